import { DataError, InputMissingError, IoError, UsageError } from "../errors.js";
import { runTool } from "../host/tools.js";
import { QmpClient } from "./qmp.js";
import { SUSPEND_SNAPSHOT } from "./saved-state.js";

/** One internal snapshot of a VM's overlay, as `qemu-img info` lists it. */
export interface Snapshot {
  name: string;
  /** Bytes of memory and device state; 0 for a disk-only snapshot. */
  stateBytes: number;
  createdAt: Date;
}

/** A snapshot name castra accepts: it reaches QEMU's monitor and qemu-img's argv, so it stays plain. */
export const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Refuses names castra cannot pass on safely, and the ones it keeps for itself. */
export function checkSnapshotName(name: string): string {
  if (!SNAPSHOT_NAME.test(name)) {
    throw new UsageError(`"${name}" is not a snapshot name`, {
      detail: "A snapshot name is 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit.",
      hint: "e.g. castra snapshot save before-upgrade",
    });
  }
  if (name.startsWith("castra-")) {
    throw new UsageError(`"${name}" is reserved for castra's own use`, {
      hint: "pick a name that does not start with castra-",
    });
  }
  return name;
}

/** The overlay's snapshots, the suspended state excluded; `-U` reads it while a VM runs on it. */
export async function listSnapshots(
  qemuImg: string,
  overlay: string,
  withSuspend = false,
): Promise<Snapshot[]> {
  const { stdout } = await runTool(qemuImg, ["info", "-U", "--output=json", overlay]);
  const info = JSON.parse(stdout) as { snapshots?: Record<string, unknown>[] };
  return (info.snapshots ?? [])
    .map((s) => ({
      name: String(s.name),
      stateBytes: Number(s["vm-state-size"] ?? 0),
      createdAt: new Date(Number(s["date-sec"] ?? 0) * 1000 + Math.floor(Number(s["date-nsec"] ?? 0) / 1e6)),
    }))
    .filter((s) => withSuspend || s.name !== SUSPEND_SNAPSHOT);
}

/** How long a monitor command that writes or reads a whole memory image may take. */
const STATE_TIMEOUT_MS = 10 * 60_000;

/**
 * Runs a monitor command on a running QEMU (`savevm`, `loadvm`, `delvm`): they report success with no
 * output and failure as text, which becomes an error naming the VM.
 */
export async function monitor(qmpSocket: string, commandLine: string, vmName: string): Promise<void> {
  const client = await QmpClient.connect(qmpSocket);
  try {
    const output = await client.execute<string>(
      "human-monitor-command",
      { "command-line": commandLine },
      STATE_TIMEOUT_MS,
    );
    if (output.trim()) throw monitorError(commandLine, vmName, output.trim());
  } finally {
    client.close();
  }
}

function monitorError(commandLine: string, vmName: string, output: string): Error {
  const what = `${commandLine.split(" ")[0]} on vm ${vmName} failed`;
  if (/no space left|ENOSPC/i.test(output))
    return new IoError(`${what}: no space left on device`, {
      detail: output,
      hint: "free some space (df -h .castra), then try again",
    });
  if (/does not exist|not found|Can't find|No such/i.test(output))
    return new InputMissingError(what, {
      detail: output,
      hint: "`castra snapshot list` shows the snapshots there are",
    });
  return new DataError(what, { detail: output, hint: "see `castra logs` for what QEMU said" });
}

/** qemu-img's `snapshot` subcommand on a stopped VM's overlay: create, apply (rewind the disk) or delete. */
export async function offlineSnapshot(
  qemuImg: string,
  overlay: string,
  action: "create" | "apply" | "delete",
  name: string,
  vmName: string,
): Promise<void> {
  const flag = { create: "-c", apply: "-a", delete: "-d" }[action];
  try {
    await runTool(qemuImg, ["snapshot", flag, name, overlay], STATE_TIMEOUT_MS);
  } catch (err) {
    const reason = (err as { stderr?: string }).stderr || (err as Error).message;
    throw monitorError(`${action} ${name}`, vmName, reason);
  }
}
