import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Bench, castraEnv, down, mustCastra, newProject, runRecord } from "../lib/castra.js";
import { smallGuestCatalog } from "../lib/guest-images.js";
import { compare } from "../lib/measure.js";
import { startDetached, stop } from "../lib/procs.js";
import type { RowResult } from "../lib/report.js";

const READY = Buffer.from("login:");
const BOOT_TIMEOUT_MS = 180_000;

/**
 * Row 7: `castra up` in an empty directory (image cached, overlay kept) until it reports the guest ready,
 * against the bare QEMU argv castra recorded in run/<vm>.pid, timed until the same serial line appears.
 */
export async function bootRow(bench: Bench): Promise<RowResult> {
  const dir = await newProject(bench, "boot");
  const env = castraEnv(await smallGuestCatalog(bench));
  await mustCastra(bench, ["images", "pull"], { cwd: dir, env });
  await mustCastra(bench, ["up"], { cwd: dir, env });
  const { argv } = await runRecord(dir, "alpine");
  await down(bench, dir, env, 10);
  // The argv writes the serial console where castra reads it (docs/design.md, "Project state").
  const serialPath = join(dir, ".castra", "logs", "alpine-serial.log");
  const overlay = join(dir, ".castra", "alpine-overlay.qcow2");

  // A TCG boot on a shared 2-vCPU machine varies by a second or more from run to run (on both sides): twice the
  // runs keep one slow boot from deciding the median.
  const runs = bench.runs * 2;
  bench.log(`boot: ${bench.warmup} warm-up + ${runs} runs of castra up and bare QEMU under TCG`);
  const [castra, bare] = await compare(
    [
      {
        name: "castra",
        sample: async () => {
          const { ms } = await mustCastra(bench, ["up"], { cwd: dir, env });
          await down(bench, dir, env, 10);
          return ms;
        },
      },
      { name: "qemu", sample: () => bareBoot(argv, serialPath, overlay) },
    ],
    { warmup: bench.warmup, runs },
  );
  return {
    id: 7,
    figure: "`castra up` until ready, test guest, TCG, direct kernel boot",
    baseline: "bare `qemu-system-x86_64`, same argv, same serial line",
    unit: "ms",
    castra,
    base: bare,
    goal: { kind: "time-ratio", max: 1.15 },
  };
}

/**
 * Starts QEMU with `argv`, returns the milliseconds until `login:` is on its serial log, then kills it. The argv
 * names its serial log and overlay by descriptor (`-add-fd` 3, 4, 5), opened here as castra opens them.
 */
async function bareBoot(argv: string[], serialPath: string, overlay: string): Promise<number> {
  await rm(serialPath, { force: true });
  const started = performance.now();
  const files = [await open(serialPath, "w"), await open(overlay, "r+"), await open(overlay, "r")];
  const qemu = startDetached(argv, { fds: files.map((f) => f.fd) });
  await Promise.all(files.map((f) => f.close()));
  try {
    let offset = 0;
    let carry = Buffer.alloc(0);
    while (performance.now() - started < BOOT_TIMEOUT_MS) {
      if (qemu.exitCode !== null) throw new Error(`bare QEMU exited with ${qemu.exitCode}`);
      const chunk = await readFrom(serialPath, offset);
      offset += chunk.length;
      const window = Buffer.concat([carry, chunk]);
      if (window.includes(READY)) return performance.now() - started;
      carry = window.subarray(Math.max(0, window.length - READY.length));
      await sleep(5);
    }
    throw new Error(`bare QEMU printed no ${READY} within ${BOOT_TIMEOUT_MS / 1000} s`);
  } finally {
    await stop(qemu);
  }
}

async function readFrom(path: string, offset: number): Promise<Buffer> {
  const handle = await open(path, "r").catch(() => undefined);
  if (!handle) return Buffer.alloc(0);
  try {
    const buffer = Buffer.alloc(1 << 20);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
