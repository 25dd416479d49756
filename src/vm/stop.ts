import { LaunchError } from "../errors.js";
import { writeJsonAtomic } from "../host/files.js";
import { signalIfOurs, waitForExit } from "../host/process.js";
import type { VmPaths } from "./paths.js";
import { qmpCommand } from "./qmp.js";
import { isOurQemu, removeRuntimeFiles, type VmRunRecord } from "./state.js";

const SIGTERM_GRACE_MS = 10_000;
const SIGKILL_GRACE_MS = 5_000;

/** What happened while stopping, in order, for the CLI to report. */
export type StopEvent =
  | { kind: "powerdown-sent" }
  | { kind: "powerdown-failed"; reason: string }
  | { kind: "powerdown-timeout"; waitedMs: number }
  /** Once a second while the guest has not powered off yet. */
  | { kind: "waiting"; waitedMs: number; timeoutMs: number }
  /** Ctrl-C during the wait: the stop goes on with signals at once. */
  | { kind: "interrupted" }
  | { kind: "signal"; signal: "SIGTERM" | "SIGKILL" };

/** How the VM ended: the guest powered off (ACPI), QEMU had to be signalled, or it was already gone. */
export type StoppedBy = "acpi" | "sigterm" | "sigkill" | "exited";

export interface StopOptions {
  /** How long the guest gets to power off after the ACPI request. */
  timeoutMs: number;
  onEvent?: (event: StopEvent) => void;
  /** Skip ACPI (e.g. Ctrl-C during `up`, or `down --force`): straight to SIGTERM. */
  skipPowerdown?: boolean;
  /** Aborted: stop waiting for the guest and finish with signals. */
  signal?: AbortSignal;
}

const TICK_MS = 1000;

/**
 * Stops one of our QEMUs: ACPI power button over QMP and a wait, then SIGTERM, then SIGKILL. Signals go
 * only to the recorded pid and only while it still runs the recorded argv. Runtime files are removed.
 */
export async function stopVm(record: VmRunRecord, paths: VmPaths, options: StopOptions): Promise<StoppedBy> {
  const emit = options.onEvent ?? (() => {});
  await writeJsonAtomic(paths.stoppingMarker, { pid: process.pid, since: new Date().toISOString() });
  try {
    if (!options.skipPowerdown) {
      const sent = await qmpCommand(record.qmpSocket, "system_powerdown").then(
        () => true,
        (err: Error) => {
          emit({ kind: "powerdown-failed", reason: err.message });
          return false;
        },
      );
      if (sent) {
        emit({ kind: "powerdown-sent" });
        if (await waitForPowerOff(record, options, emit)) return "acpi";
        if (options.signal?.aborted) emit({ kind: "interrupted" });
        else emit({ kind: "powerdown-timeout", waitedMs: options.timeoutMs });
      }
    }
    for (const [signal, grace] of [
      ["SIGTERM", SIGTERM_GRACE_MS],
      ["SIGKILL", SIGKILL_GRACE_MS],
    ] as const) {
      if (!(await signalIfOurs(record.pid, record.argv, signal))) return "exited";
      emit({ kind: "signal", signal });
      if (await waitForExit(record.pid, record.argv, grace))
        return signal === "SIGTERM" ? "sigterm" : "sigkill";
    }
    throw new LaunchError(`QEMU (pid ${record.pid}) did not exit even after SIGKILL`, {
      detail: "The process may be stuck in the kernel (uninterruptible I/O).",
      hint: `check it with \`ps -o pid,stat,cmd -p ${record.pid}\`, then run \`castra down\` again`,
    });
  } finally {
    if (!(await isOurQemu(record))) await removeRuntimeFiles(paths, record);
  }
}

/** Waits for the guest to power off, a tick a second; false on timeout or Ctrl-C. */
async function waitForPowerOff(
  record: VmRunRecord,
  options: StopOptions,
  emit: (event: StopEvent) => void,
): Promise<boolean> {
  const begun = Date.now();
  for (;;) {
    const left = options.timeoutMs - (Date.now() - begun);
    if (left <= 0 || options.signal?.aborted) return false;
    if (await waitForExit(record.pid, record.argv, Math.min(TICK_MS, left), options.signal)) return true;
    const waitedMs = Date.now() - begun;
    if (waitedMs < options.timeoutMs && !options.signal?.aborted)
      emit({ kind: "waiting", waitedMs, timeoutMs: options.timeoutMs });
  }
}
