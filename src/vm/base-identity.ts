import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { DataError, fsError } from "../errors.js";
import { writeJsonAtomic } from "../host/files.js";

/**
 * The base image an overlay was created on, recorded beside the overlay (`<overlay>.base.json`). A qcow2
 * overlay only names its backing file: another disk copied to the same path would be mixed with the
 * overlay's blocks and corrupt the guest silently. This record lets `up` notice and refuse.
 */
interface BaseIdentity {
  path: string;
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
  recorded_at: string;
}

export function baseIdentityPath(overlay: string): string {
  return `${overlay}.base.json`;
}

/** Records `base` as the overlay's base, after the overlay was created on it. */
export async function recordBaseIdentity(overlay: string, base: string): Promise<void> {
  const info = await statBase(base);
  await write(overlay, base, info, await hashBase(base));
}

/**
 * Checks that `base` is still the disk the overlay was created on: the same stamp (size, mtime, inode) costs
 * a stat; a different stamp is re-hashed once. An overlay without a record (made by an older castra) gets one.
 */
export async function checkBaseIdentity(overlay: string, base: string, vmName: string): Promise<void> {
  const recorded = await readRecord(overlay);
  const info = await statBase(base);
  if (!recorded) return write(overlay, base, info, await hashBase(base));
  if (recorded.size === info.size && recorded.mtimeMs === info.mtimeMs && recorded.ino === info.ino) return;
  const sha256 = await hashBase(base);
  if (sha256 === recorded.sha256) return write(overlay, base, info, sha256); // touched or copied, same bytes
  throw new DataError(`The base image of vm ${vmName} changed since its overlay was created`, {
    detail:
      `${overlay} was created on ${recorded.path} (sha256 ${recorded.sha256}, ${recorded.size} bytes);\n` +
      `${base} now holds other bytes (sha256 ${sha256}, ${info.size} bytes).\n` +
      "Booting would mix the overlay's blocks with another disk and corrupt the guest, so castra does not start it.",
    hint: `put the original base image back at ${base}, or move the overlay away (mv ${overlay} ${overlay}.old) to start fresh`,
  });
}

async function readRecord(overlay: string): Promise<BaseIdentity | undefined> {
  try {
    const record = JSON.parse(await readFile(baseIdentityPath(overlay), "utf8")) as BaseIdentity;
    return typeof record.sha256 === "string" && typeof record.size === "number" ? record : undefined;
  } catch {
    return undefined; // missing or torn: recorded again from the current base
  }
}

async function statBase(base: string) {
  try {
    return await stat(base);
  } catch (err) {
    throw fsError(err, "read the base image", base);
  }
}

async function hashBase(base: string): Promise<string> {
  const hash = createHash("sha256");
  try {
    for await (const chunk of createReadStream(base, { highWaterMark: 1 << 20 }))
      hash.update(chunk as Buffer);
  } catch (err) {
    throw fsError(err, "read the base image", base);
  }
  return hash.digest("hex");
}

function write(
  overlay: string,
  base: string,
  info: { size: number; mtimeMs: number; ino: number },
  sha256: string,
): Promise<void> {
  const record: BaseIdentity = {
    path: base,
    size: info.size,
    mtimeMs: info.mtimeMs,
    ino: info.ino,
    sha256,
    recorded_at: new Date().toISOString(),
  };
  return writeJsonAtomic(baseIdentityPath(overlay), record);
}
