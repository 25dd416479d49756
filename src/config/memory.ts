/**
 * Memory sizes as castra.toml writes them ("2048 MiB", "2 GiB", "512M"). Every unit is binary, as QEMU's
 * `-m 512M` is: K/KB/KiB = 1024 bytes, M/MB/MiB = 1024² and so on. A bare number is refused, because
 * "2048" could mean bytes or MiB depending on whom you ask.
 */

const UNIT_POWERS: Record<string, number> = { b: 0, k: 1, m: 2, g: 3, t: 4 };
const MIB = 1024 * 1024;

export const MEMORY_EXAMPLE = '"2048 MiB"';

/** Parses a size string into bytes; throws a plain Error whose message explains what is accepted. */
export function parseMemorySize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!match) {
    throw new Error(
      `"${text}" is not a size: write a number and a unit, e.g. ${MEMORY_EXAMPLE}, "2 GiB" or "512M"`,
    );
  }
  const [, amount = "", rawUnit = ""] = match;
  if (rawUnit === "") {
    throw new Error(`"${text}" has no unit: write "${amount} MiB" or "${amount}M" for mebibytes`);
  }
  const unit = /^([bkmgt])(?:i?b)?$/i.exec(rawUnit);
  const power = unit?.[1] ? UNIT_POWERS[unit[1].toLowerCase()] : undefined;
  if (power === undefined || (unit?.[1]?.toLowerCase() === "b" && rawUnit.length > 1)) {
    throw new Error(`"${rawUnit}" is not a size unit: use KiB, MiB, GiB or TiB (or K, M, G, T)`);
  }
  const bytes = Number(amount) * 1024 ** power;
  if (!Number.isSafeInteger(bytes) || bytes < MIB || bytes % MIB !== 0) {
    // QEMU takes memory in whole MiB; refusing odd sizes beats silently rounding them.
    throw new Error(`"${text}" must be a whole number of MiB, at least 1 MiB, e.g. ${MEMORY_EXAMPLE}`);
  }
  return bytes;
}
