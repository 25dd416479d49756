import { readFile, rm } from "node:fs/promises";
import type { PortForward, Project, VmConfig } from "../config/model.js";
import { fsError } from "../errors.js";
import { exists } from "../host/files.js";
import { readTailLines, scanFileFor } from "../host/log-tail.js";
import { argvCarrying, isAlive, runsArgv } from "../host/process.js";
import type { Accelerator } from "./accel.js";
import type { SshEndpoint } from "./guest-access.js";
import { type VmPaths, vmPaths } from "./paths.js";
import { hostForwardRule, qemuIdentities } from "./qemu-args.js";
import { readSuspendRecord, type SuspendRecord } from "./saved-state.js";

export type VmState = "stopped" | "starting" | "running" | "shutting_down" | "suspended" | "error";

/**
 * `.castra/run/<vm>.pid`: who was started, with what, and when. Read back (`vmStatus`), it is believed only
 * as far as the live process and the configuration confirm it: `argv` is then what the process runs, and
 * the paths are the configuration's own.
 */
export interface VmRunRecord {
  pid: number;
  /** The full argv, binary first, as the process runs it; empty when the pid is not this VM's QEMU. */
  argv: string[];
  startedAt: string;
  accel: Accelerator;
  baseImage: string;
  overlay: string;
  cpus: number;
  memoryBytes: number;
  readyPattern?: string;
  qmpSocket: string;
  serialLog: string;
  qemuLog: string;
  /** Where `castra ssh` connects; absent with `ssh = false` (or a QEMU started by an older castra). */
  ssh?: SshEndpoint;
  /** Set when this QEMU resumed a state saved at that time instead of booting. */
  resumedFrom?: string;
  /** The declared port forwards this QEMU was started with (castra.toml may have changed since). */
  forwards?: PortForward[];
}

export interface VmStatus {
  vm: VmConfig;
  state: VmState;
  paths: VmPaths;
  /** Present whenever a pid file exists, even for a stopped or failed VM. */
  record?: VmRunRecord;
  /** For `error`: the last lines QEMU wrote to logs/<vm>.log. */
  lastLogLines?: string[];
  /** For `suspended`: the saved state `up` resumes. */
  suspended?: SuspendRecord;
}

export async function readRunRecord(pidFile: string): Promise<VmRunRecord | undefined> {
  let text: string;
  try {
    text = await readFile(pidFile, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw fsError(err, "read the pid file", pidFile);
  }
  try {
    const record = JSON.parse(text) as VmRunRecord;
    return Number.isInteger(record.pid) && Array.isArray(record.argv) ? record : undefined;
  } catch {
    return undefined; // A torn or foreign pid file identifies no process of ours.
  }
}

/**
 * Removes the pid file, the shutting-down marker, the QMP socket and the metadata responder's configuration
 * (its token secret must not outlive the VM) of a VM that no longer runs: the configuration's paths only,
 * never one a record names.
 */
export async function removeRuntimeFiles(paths: VmPaths, _record?: VmRunRecord): Promise<void> {
  const files = [
    paths.pidFile,
    paths.stoppingMarker,
    paths.qmpSocket,
    paths.metadataConfig,
    paths.mountsRecord,
  ];
  await Promise.all(files.map((f) => rm(f, { force: true })));
}

/** Is the recorded QEMU still the process behind its pid? */
export function isOurQemu(record: VmRunRecord): Promise<boolean> {
  return record.argv.length > 0 ? runsArgv(record.pid, record.argv) : Promise.resolve(false);
}

/**
 * A record read from disk, believed only as far as the world confirms it: the argv the live process runs
 * when it carries the VM's identity (else none), the configuration's paths, and the SSH endpoint only when
 * that QEMU really forwards it.
 */
async function confirmedRecord(found: VmRunRecord, project: Project, vm: VmConfig, paths: VmPaths) {
  const argv = (await argvCarrying(found.pid, qemuIdentities(project.name, vm.name, paths))) ?? [];
  const ssh = found.ssh && argv.length > 0 && forwardsSsh(argv, found.ssh) ? found.ssh : undefined;
  const { ssh: _claimed, ...rest } = found;
  const record: VmRunRecord = {
    ...rest,
    argv,
    qmpSocket: paths.qmpSocket,
    serialLog: paths.serialLog,
    qemuLog: paths.qemuLog,
  };
  return ssh ? { ...record, ssh } : record;
}

/** Whether the QEMU's own `-netdev` forwards the endpoint's port to guest port 22. */
function forwardsSsh(argv: string[], ssh: SshEndpoint): boolean {
  const rule = hostForwardRule({ protocol: "tcp", hostAddress: ssh.host, host: ssh.port, guest: 22 });
  return argv.some((arg, i) => argv[i - 1] === "-netdev" && arg.split(",").includes(rule));
}

/** The state of one VM, from its pid file, the process table and its serial log (docs/design.md, "VMs"). */
export async function vmStatus(project: Project, vm: VmConfig): Promise<VmStatus> {
  const paths = vmPaths(project, vm);
  const found = await readRunRecord(paths.pidFile);
  if (!found) return notRunning(vm, paths);
  const record = await confirmedRecord(found, project, vm, paths);
  if (record.argv.length > 0) {
    if (await exists(paths.stoppingMarker)) return { vm, state: "shutting_down", paths, record };
    const ready = !record.readyPattern || (await serialLogContains(paths.serialLog, record.readyPattern));
    return { vm, state: ready ? "running" : "starting", paths, record };
  }
  // The pid now belongs to someone else (so ours exited long ago), or a `down` was interrupted: stopped.
  if ((await isAlive(record.pid)) || (await exists(paths.stoppingMarker)))
    return { vm, state: "stopped", paths, record };
  const lastLogLines = await lastRunLines(paths.qemuLog);
  return { vm, state: "error", paths, record, lastLogLines };
}

/** A VM without a live QEMU: suspended when a saved state waits for it, else stopped. */
async function notRunning(vm: VmConfig, paths: VmPaths): Promise<VmStatus> {
  const suspended = await readSuspendRecord(vm.overlay);
  return suspended ? { vm, state: "suspended", paths, suspended } : { vm, state: "stopped", paths };
}

/** How many of QEMU's last lines explain a crash: enough for the cause, not a page of history. */
const LAST_LINES = 5;
/** castra's own line that opens each run in the QEMU log (it carries the whole argv). */
const RUN_START = /^\S+ castra: starting vm /;

/** QEMU's last lines from its latest run only: earlier runs and castra's own argv line left out. */
export async function lastRunLines(qemuLog: string): Promise<string[]> {
  const lines = await readTailLines(qemuLog, 200).catch(() => [] as string[]);
  let start = lines.length - 1;
  while (start >= 0 && !RUN_START.test(lines[start] as string)) start--;
  return lines.slice(start + 1).slice(-LAST_LINES);
}

export function projectStatus(project: Project): Promise<VmStatus[]> {
  return Promise.all(project.vms.map((vm) => vmStatus(project, vm)));
}

/** Whether the ready pattern has appeared on the serial console of the current boot. */
export function serialLogContains(serialLog: string, pattern: string): Promise<boolean> {
  return scanFileFor(serialLog, pattern);
}
