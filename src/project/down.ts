import type { Project, VmConfig } from "../config/model.js";
import { InterruptedError } from "../errors.js";
import { exists } from "../host/files.js";
import { projectPaths } from "../vm/paths.js";
import type { VmStatus } from "../vm/state.js";
import type { ProjectEvent } from "./events.js";
import type { VmHost } from "./vm-host.js";

export interface DownOptions {
  /** The VMs to stop (default: every VM of the project, and then the broker too). */
  targets?: readonly VmConfig[];
  env: NodeJS.ProcessEnv;
  /** How long each guest gets to power off after the ACPI request, before SIGTERM. */
  timeoutMs: number;
  /** No ACPI request at all: SIGTERM at once, then SIGKILL. */
  force?: boolean;
  signal: AbortSignal;
  onEvent: (event: ProjectEvent) => void;
}

/** What `down` found and did. */
export interface DownResult {
  /** VMs that were running (or starting, or shutting down) and are stopped now. */
  stopped: string[];
  /** Suspended VMs whose saved state was thrown away. */
  discarded: string[];
  brokerStopped: boolean;
}

const LIVE_STATES: VmStatus["state"][] = ["running", "starting", "shutting_down"];
/** A guest still booting often has no ACPI handler yet: it gets this long, not the whole timeout. */
export const NOT_READY_ACPI_MS = 5000;

/**
 * `castra down` for a project: under the project lock, ACPI power-down of every live VM (then SIGTERM, then
 * SIGKILL) and its metadata server stopped, runtime files of VMs that had already stopped removed (and a
 * metadata server one left behind), and the broker stopped.
 */
export async function downProject(project: Project, host: VmHost, options: DownOptions): Promise<DownResult> {
  const { onEvent } = options;
  // A project that never ran has no run/ directory: nothing to stop, and no lock to create.
  if (!(await exists(projectPaths(project).runDir)))
    return { stopped: [], discarded: [], brokerStopped: false };
  const lock = await host.lockProject(project, "castra down", {
    signal: options.signal,
    onWait: (holder) => onEvent({ type: "lock-wait", holder }),
  });
  let result: DownResult;
  try {
    result = await stopTargets(project, host, options);
  } finally {
    await lock.release();
  }
  // Ctrl-C cut the ACPI waits short; the VMs were still stopped (with signals), so the state is clear.
  if (options.signal.aborted) {
    throw new InterruptedError("Interrupted", {
      detail: `Stopped ${result.stopped.join(", ") || "nothing"} with signals instead of waiting for the guests to power off.`,
      hint: "`castra status` shows every VM stopped",
    });
  }
  return result;
}

/** Under the project lock: stops the targets (ACPI first), forgets suspended states, clears stale records. */
export async function stopTargets(project: Project, host: VmHost, options: DownOptions): Promise<DownResult> {
  const { onEvent } = options;
  const statuses = await Promise.all(
    (options.targets ?? project.vms).map((vm) => host.vmStatus(project, vm)),
  );
  const live = statuses.filter((s) => s.record && LIVE_STATES.includes(s.state));
  const suspended = statuses.filter((s) => s.state === "suspended");
  for (const status of statuses)
    if (!live.includes(status) && !suspended.includes(status)) await clearStale(host, status, onEvent);
  await Promise.all(live.map((status) => stopOne(host, status, options)));
  for (const status of suspended) await discard(host, status, options);
  const brokerStopped = (await nothingLeftRunning(project, host)) && (await stopBroker(project, host));
  if (brokerStopped) onEvent({ type: "broker-stopped" });
  return { stopped: live.map((s) => s.vm.name), discarded: suspended.map((s) => s.vm.name), brokerStopped };
}

/** `down` of a suspended VM: the VM is already stopped; what it still holds is a state nobody will resume. */
async function discard(host: VmHost, status: VmStatus, options: DownOptions): Promise<void> {
  const tools = await host.hostTools(options.env);
  await host.discardSavedState(tools.qemuImg, status.vm);
  const savedAt = status.suspended?.savedAt ?? "";
  options.onEvent({ type: "saved-state-discarded", vm: status.vm.name, savedAt });
}

/** The broker serves the project's VMs: it stops with the last of them. */
async function nothingLeftRunning(project: Project, host: VmHost): Promise<boolean> {
  const statuses = await Promise.all(project.vms.map((vm) => host.vmStatus(project, vm)));
  return statuses.every((s) => !LIVE_STATES.includes(s.state));
}

async function stopBroker(project: Project, host: VmHost): Promise<boolean> {
  const broker = await host.brokerStatus(project.stateDir);
  return broker.record ? host.stopBroker(project.stateDir, broker.record) : false;
}

async function stopOne(host: VmHost, status: VmStatus, options: DownOptions): Promise<void> {
  const { vm, paths, record } = status;
  if (!record) return;
  const begun = Date.now();
  const booting = status.state === "starting";
  const timeoutMs = options.force
    ? 0
    : booting
      ? Math.min(options.timeoutMs, NOT_READY_ACPI_MS)
      : options.timeoutMs;
  options.onEvent({
    type: "stopping",
    vm: vm.name,
    pid: record.pid,
    timeoutMs,
    booting,
    force: Boolean(options.force),
  });
  const by = await host.stopVm(record, paths, {
    timeoutMs,
    skipPowerdown: timeoutMs === 0,
    signal: options.signal,
    onEvent: (step) => options.onEvent({ type: "stop-step", vm: vm.name, step }),
  });
  await host.stopMetadataServer(paths);
  options.onEvent({ type: "stopped", vm: vm.name, by, elapsedMs: Date.now() - begun });
}

/** A VM that is not running but left runtime files: an unexpected exit, or a pid now used by another program. */
async function clearStale(host: VmHost, status: VmStatus, onEvent: DownOptions["onEvent"]): Promise<void> {
  const { vm, record, paths } = status;
  // A server outlives its QEMU by at most a second; one killed with it left its files.
  await host.stopMetadataServer(paths);
  if (!record) return;
  await host.removeRuntimeFiles(paths, record);
  const cause = status.state === "error" ? "exited" : "pid-reused";
  onEvent({ type: "stale-cleared", vm: vm.name, pid: record.pid, cause });
}
