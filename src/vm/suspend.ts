import { createHash } from "node:crypto";
import type { VmConfig } from "../config/model.js";
import { DataError, InterruptedError, LaunchError } from "../errors.js";
import { formatBytes } from "../host/bytes.js";
import { signalIfOurs, waitForExit } from "../host/process.js";
import { runTool } from "../host/tools.js";
import type { VmPaths } from "./paths.js";
import { qmpCommand } from "./qmp.js";
import {
  type MachineFingerprint,
  overlayStamp,
  SUSPEND_SNAPSHOT,
  type SuspendRecord,
  writeSuspendRecord,
} from "./saved-state.js";
import { listSnapshots, monitor } from "./snapshots.js";
import { removeRuntimeFiles, type VmRunRecord } from "./state.js";

const QUIT_GRACE_MS = 30_000;

/** Options whose values shape the guest; the rest (names, sockets, logs, network forwards) are host-side. */
const HARDWARE_OPTIONS = new Set([
  "-machine",
  "-accel",
  "-cpu",
  "-smp",
  "-m",
  "-drive",
  "-kernel",
  "-initrd",
  "-append",
  "-device",
  "-fsdev",
]);

export function machineFingerprint(
  argv: readonly string[],
  qemuVersion: string,
  resources: { cpus: number; memoryBytes: number },
): MachineFingerprint {
  const hash = createHash("sha256");
  argv.forEach((arg, i) => {
    if (i > 0 && HARDWARE_OPTIONS.has(argv[i - 1] as string)) hash.update(`${argv[i - 1]}\0${arg}\0`);
  });
  return {
    qemuVersion,
    cpus: resources.cpus,
    memoryBytes: resources.memoryBytes,
    hardware: hash.digest("hex"),
  };
}

/** What changed between the saved machine and the one `up` would start now; empty when it may be resumed. */
export function fingerprintChanges(saved: MachineFingerprint, now: MachineFingerprint): string[] {
  const changes: string[] = [];
  if (saved.memoryBytes !== now.memoryBytes)
    changes.push(`memory ${formatBytes(saved.memoryBytes)} → ${formatBytes(now.memoryBytes)}`);
  if (saved.cpus !== now.cpus) changes.push(`cpus ${saved.cpus} → ${now.cpus}`);
  if (saved.qemuVersion !== now.qemuVersion) changes.push(`QEMU ${saved.qemuVersion} → ${now.qemuVersion}`);
  if (changes.length === 0 && saved.hardware !== now.hardware)
    changes.push("the VM's hardware (machine, accelerator, disks, devices, mounts or boot settings)");
  return changes;
}

/** "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)": the same text from `--version` and from QMP. */
export async function qemuVersionOf(qemuSystem: string): Promise<string> {
  const { stdout } = await runTool(qemuSystem, ["--version"]);
  return (stdout.split("\n")[0] ?? "").replace(/^QEMU emulator version /, "").trim();
}

async function runningQemuVersion(qmpSocket: string): Promise<string> {
  const v = await qmpCommand<{ qemu: { major: number; minor: number; micro: number }; package?: string }>(
    qmpSocket,
    "query-version",
  );
  const pkg = v.package?.trim();
  return `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}${pkg ? ` (${pkg})` : ""}`;
}

/**
 * Saves a running VM's whole state (memory, devices) as an internal snapshot of its overlay, then ends
 * QEMU. The record that makes the state resumable is written last, after QEMU is gone: a save that failed or
 * was interrupted leaves the VM running and nothing that `up` would resume.
 */
export async function suspendVm(input: {
  vm: VmConfig;
  record: VmRunRecord;
  paths: VmPaths;
  qemuImg: string;
  signal?: AbortSignal;
}): Promise<SuspendRecord> {
  const { vm, record, paths } = input;
  const qemuVersion = await runningQemuVersion(record.qmpSocket);
  try {
    await monitor(record.qmpSocket, `savevm ${SUSPEND_SNAPSHOT}`, vm.name);
  } catch (err) {
    // savevm lets the guest run on after a failure; a partial snapshot must not linger.
    await monitor(record.qmpSocket, `delvm ${SUSPEND_SNAPSHOT}`, vm.name).catch(() => {});
    throw err;
  }
  if (input.signal?.aborted) {
    await monitor(record.qmpSocket, `delvm ${SUSPEND_SNAPSHOT}`, vm.name).catch(() => {});
    throw new InterruptedError(`Interrupted: vm ${vm.name} keeps running, nothing was saved`);
  }
  await qmpCommand(record.qmpSocket, "quit").catch(() => undefined);
  if (!(await waitForExit(record.pid, record.argv, QUIT_GRACE_MS))) {
    await signalIfOurs(record.pid, record.argv, "SIGKILL");
    await waitForExit(record.pid, record.argv, 5000);
  }
  const snapshot = (await listSnapshots(input.qemuImg, vm.overlay, true)).find(
    (s) => s.name === SUSPEND_SNAPSHOT,
  );
  if (!snapshot) {
    throw new LaunchError(`vm ${vm.name}'s saved state is missing from its overlay`, {
      detail: `QEMU reported the save done, but ${vm.overlay} holds no ${SUSPEND_SNAPSHOT} snapshot.`,
      hint: "run `castra up` to boot it from its disk",
    });
  }
  const saved: SuspendRecord = {
    savedAt: new Date().toISOString(),
    fingerprint: machineFingerprint(record.argv.slice(1), qemuVersion, record),
    overlay: await overlayStamp(vm.overlay),
    stateBytes: snapshot.stateBytes,
    ...(record.ssh ? { ssh: record.ssh } : {}),
  };
  await writeSuspendRecord(vm.overlay, saved);
  await removeRuntimeFiles(paths, record);
  return saved;
}

/**
 * Refuses a saved state the VM would no longer fit: other memory, CPUs, devices or QEMU, an overlay written
 * to since, or no snapshot there at all. `args` is the argv `up` is about to start (without the binary).
 */
export async function checkResumable(input: {
  vm: VmConfig;
  saved: SuspendRecord;
  args: readonly string[];
  qemuSystem: string;
  qemuImg: string;
  resources: { cpus: number; memoryBytes: number };
}): Promise<void> {
  const { vm, saved } = input;
  const now = machineFingerprint(input.args, await qemuVersionOf(input.qemuSystem), input.resources);
  const changes = fingerprintChanges(saved.fingerprint, now);
  const stamp = await overlayStamp(vm.overlay).catch(() => undefined);
  if (!stamp || stamp.size !== saved.overlay.size || stamp.mtimeMs !== saved.overlay.mtimeMs)
    changes.push(`its overlay ${vm.overlay} was changed since`);
  else if (!(await listSnapshots(input.qemuImg, vm.overlay, true)).some((s) => s.name === SUSPEND_SNAPSHOT))
    changes.push(`its overlay holds no ${SUSPEND_SNAPSHOT} snapshot`);
  if (changes.length === 0) return;
  throw new DataError(`vm ${vm.name} was suspended on a machine it no longer matches`, {
    detail: `Saved ${saved.savedAt}; since then: ${changes.join("; ")}. Resuming would corrupt the guest.`,
    hint: `put the settings back to resume it, or run \`castra up --discard-suspended ${vm.name}\` to boot it from its disk (its saved memory is lost)`,
  });
}
