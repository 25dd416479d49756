import { InterruptedError, LaunchError } from "../errors.js";
import { readFrom, readTailLines } from "../host/log-tail.js";
import { sleep } from "../host/process.js";
import { qemuFailure } from "./launch.js";
import { qmpCommand } from "./qmp.js";
import { isOurQemu, type VmRunRecord } from "./state.js";

/** Each look reads only what the serial log gained; a short interval reports the guest ready sooner. */
const POLL_MS = 50;

export interface ReadyOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Called on every poll with the time since the VM was started. */
  onTick?: (elapsedMs: number) => void;
}

export interface Readiness {
  /** Since QEMU was started (from the pid file), so a second `up` reports the same boot time. */
  elapsedMs: number;
  /** What proved readiness: the ready pattern on the serial console, or QMP reporting the VM running. */
  by: "pattern" | "qmp";
}

/**
 * Waits until the guest is ready: its ready pattern appears on the serial log, or (without a pattern) QMP
 * says it runs. QEMU dying or the timeout passing is a LaunchError (exit 70) with the lines that explain it.
 */
export async function waitUntilReady(
  vmName: string,
  record: VmRunRecord,
  options: ReadyOptions,
): Promise<Readiness> {
  const started = Date.parse(record.startedAt) || Date.now();
  const deadline = Date.now() + options.timeoutMs;
  const watcher = record.readyPattern ? new PatternWatcher(record.serialLog, record.readyPattern) : undefined;
  for (;;) {
    if (options.signal?.aborted) throw new InterruptedError("Interrupted while waiting for the VMs to boot");
    options.onTick?.(Date.now() - started);
    if (watcher ? await watcher.seen() : await qmpRunning(record.qmpSocket)) {
      return { elapsedMs: Date.now() - started, by: watcher ? "pattern" : "qmp" };
    }
    if (!(await isOurQemu(record)))
      throw await qemuFailure(vmName, record.qemuLog, "QEMU exited before the guest was ready");
    if (Date.now() >= deadline) throw await notReadyError(vmName, record, options.timeoutMs);
    await sleep(POLL_MS);
  }
}

/** Finds a text in a growing file, reading only what was appended since the last look. */
class PatternWatcher {
  private offset = 0;
  private carry = Buffer.alloc(0);
  private readonly needle: Buffer;

  constructor(
    private readonly file: string,
    pattern: string,
  ) {
    this.needle = Buffer.from(pattern);
  }

  async seen(): Promise<boolean> {
    for (;;) {
      const chunk = await readFrom(this.file, this.offset).catch(() => Buffer.alloc(0));
      if (chunk.length === 0) return false;
      this.offset += chunk.length;
      const window = Buffer.concat([this.carry, chunk]);
      if (window.includes(this.needle)) return true;
      // Keep the tail so a pattern split across two reads is still found.
      this.carry = window.subarray(Math.max(0, window.length - this.needle.length + 1));
    }
  }
}

async function qmpRunning(socket: string): Promise<boolean> {
  const status = await qmpCommand<{ running?: boolean }>(socket, "query-status", undefined, 2000).catch(
    () => undefined,
  );
  return status?.running === true;
}

async function notReadyError(vmName: string, record: VmRunRecord, timeoutMs: number): Promise<LaunchError> {
  const lines = await readTailLines(record.serialLog, 10).catch(() => []);
  const what = record.readyPattern
    ? `"${record.readyPattern}" did not appear on its serial console`
    : "QMP never reported it running";
  return new LaunchError(`vm ${vmName} was not ready within ${Math.round(timeoutMs / 1000)} s: ${what}`, {
    detail:
      lines.length > 0
        ? `Last lines of ${record.serialLog}:\n${lines.map((l) => `  ${l}`).join("\n")}`
        : `${record.serialLog} is empty: the guest printed nothing on its serial console (ttyS0).`,
    hint:
      lines.length === 0 && record.accel === "kvm"
        ? "a silent console under KVM often means this host's KVM hangs guests: `castra doctor` checks it; `castra down`, then `castra up --accel tcg`"
        : `it is still running: watch it with \`castra logs --follow\`, stop it with \`castra down\`, or wait longer with \`castra up --timeout ${Math.round((timeoutMs * 2) / 1000)}\``,
  });
}
