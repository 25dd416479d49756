import type { BrokerRecord } from "../broker/state.js";
import type { Project, VmConfig } from "../config/model.js";
import { hostPortClaims } from "../config/ports.js";
import { InterruptedError, LaunchError } from "../errors.js";
import type { HostTools } from "../host/tools.js";
import type { ImageEvent } from "../images/events.js";
import type { Accelerator } from "../vm/accel.js";
import type { BaseImageLocation } from "../vm/base-image.js";
import { pendingChanges } from "../vm/drift.js";
import type { GuestAccess } from "../vm/guest-access.js";
import { type VmPaths, vmPaths } from "../vm/paths.js";
import { vmResources } from "../vm/qemu-args.js";
import type { SuspendRecord } from "../vm/saved-state.js";
import type { LiveVm, ProjectEvent } from "./events.js";
import { hasGuestSetup, setUpGuest } from "./guest-setup.js";
import type { VmHost } from "./vm-host.js";

export interface UpOptions {
  /** The VMs to start (default: every VM of the project). */
  targets?: readonly VmConfig[];
  /** Boot suspended VMs from their disks, throwing their saved states away. */
  discardSuspended?: boolean;
  /** Wait until every guest is ready (false: return once each QEMU answers on QMP). */
  wait: boolean;
  timeoutMs: number;
  accel?: string;
  /** Turn failed CPU, memory, disk and port checks into warnings. */
  force: boolean;
  offline: boolean;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  /** How to run castra itself: for the broker process and each VM's metadata server. */
  self: { execPath: string; execArgv: string[]; entry: string };
  onEvent: (event: ProjectEvent) => void;
}

/** What this `up` started, so a failure or Ctrl-C stops exactly that. */
interface Started {
  vms: LiveVm[];
  /** The VMs whose metadata server this `up` started. */
  metadataServers: VmPaths[];
  broker?: BrokerRecord;
}

/**
 * `castra up` for a project: under the project lock, starts every VM (and the broker) not already running,
 * then waits until each guest is ready. Returns the VMs it ran or found running. A failure while starting,
 * or Ctrl-C at any point, stops exactly what this call started and nothing else.
 */
export async function upProject(project: Project, host: VmHost, options: UpOptions): Promise<LiveVm[]> {
  const { signal, onEvent } = options;
  const accel = await host.chooseAccelerator(options.accel, options.env);
  const narrowed = await host.ensureStateDirs(project);
  if (narrowed.length > 0) onEvent({ type: "modes-narrowed", stateDir: project.stateDir, narrowed });
  const lock = await host.lockProject(project, "castra up", {
    signal,
    onWait: (holder) => onEvent({ type: "lock-wait", holder }),
  });
  await host.rememberProject(project, options.env);
  const started: Started = { vms: [], metadataServers: [] };
  let live: LiveVm[];
  try {
    live = await startMissing(project, host, options, accel, started);
  } catch (err) {
    await stopStarted(project, host, started);
    throw signal.aborted ? interrupted(started, err) : err;
  } finally {
    await lock.release();
  }
  if (!options.wait) {
    const deferred = started.vms.filter(hasGuestSetup).map((s) => s.vm.name);
    if (deferred.length > 0) onEvent({ type: "setup-deferred", vms: deferred });
    return live;
  }
  try {
    await waitForAll(project, host, live, options);
    // Inside the guests this up started: a resumed guest is not booted again, so `always` steps wait.
    for (const vm of started.vms.filter(hasGuestSetup))
      await setUpGuest(project, host, vm, vm.record.resumedFrom ? "resume" : "boot", options);
  } catch (err) {
    // A guest not ready in time, or whose provisioning failed, keeps running (the error says what to do next);
    // Ctrl-C stops ours.
    if (!signal.aborted) throw err;
    await stopStarted(project, host, started);
    throw interrupted(started);
  }
  return live;
}

/** Under the project lock: starts every VM (and the broker) not already running; returns the live VMs. */
async function startMissing(
  project: Project,
  host: VmHost,
  options: UpOptions,
  accel: { accel: Accelerator; warning?: string },
  started: Started,
): Promise<LiveVm[]> {
  const { onEvent } = options;
  const live: LiveVm[] = [];
  const toStart: VmConfig[] = [];
  const resume = new Map<VmConfig, SuspendRecord>();
  let tools: HostTools | undefined;
  for (const vm of options.targets ?? project.vms) {
    const status = await host.vmStatus(project, vm);
    const { record } = status;
    if (status.state === "suspended" && status.suspended) {
      if (options.discardSuspended) {
        tools ??= await host.hostTools(options.env);
        await host.discardSavedState(tools.qemuImg, vm);
        onEvent({ type: "saved-state-discarded", vm: vm.name, savedAt: status.suspended.savedAt });
      } else resume.set(vm, status.suspended);
      toStart.push(vm);
      continue;
    }
    if ((status.state === "running" || status.state === "starting") && record) {
      onEvent({ type: "already-live", vm: vm.name, state: status.state, pid: record.pid });
      const changes = pendingChanges(vm, record);
      if (changes.length > 0) onEvent({ type: "settings-pending", vm: vm.name, changes });
      live.push({ vm, record });
      continue;
    }
    if (status.state === "shutting_down") {
      throw new LaunchError(`vm ${vm.name} is still shutting down (pid ${record?.pid})`, {
        detail: "A `castra down` began stopping it and did not finish.",
        hint: "run `castra down` to finish stopping it, then `castra up`",
      });
    }
    if (status.state === "error" && record)
      onEvent({ type: "restarting-after-error", vm: vm.name, pid: record.pid });
    await host.removeRuntimeFiles(status.paths, record);
    toStart.push(vm);
  }
  const broker =
    project.broker && (await host.brokerStatus(project.stateDir)).state !== "running"
      ? project.broker
      : undefined;
  if (toStart.length === 0 && !broker) return live;

  if (accel.warning && toStart.length > 0) onEvent({ type: "accel-fallback", reason: accel.warning });
  // Every check that needs no image runs before any download: a missing tool must not cost one first.
  const checked = await host.preflight({
    project,
    vms: await preflightPlan(host, options, toStart),
    force: options.force,
    env: options.env,
  });
  for (const problem of checked.warnings) onEvent({ type: "check-forced", problem });
  // Mount directories and provisioning scripts are checked before any download, too.
  for (const vm of toStart) await host.checkGuestSetup(project, vm);
  const plan = await planVms(project, host, options, toStart);
  const { accesses, warnings } = await host.settleGuestAccess(project, plan);
  for (const message of warnings) onEvent({ type: "guest-access-warning", message });
  const takenPorts = new Set(hostPortClaims(project).flatMap((c) => (c.protocol === "tcp" ? [c.port] : [])));

  for (const [i, { vm, base, resources }] of plan.entries()) {
    throwIfAborted(options.signal);
    const disk = await host.prepareDisk(checked.tools.qemuImg, vm, base);
    if (disk.overlay === "created")
      onEvent({ type: "overlay-created", vm: vm.name, overlay: vm.overlay, base: disk.base.path });
    const saved = resume.get(vm);
    const { cpus, memoryBytes } = resources;
    if (saved) onEvent({ type: "vm-resuming", vm: vm.name, savedAt: saved.savedAt });
    else onEvent({ type: "vm-starting", vm: vm.name, accel: accel.accel, cpus, memoryBytes });
    const paths = vmPaths(project, vm);
    const access = accesses[i] as GuestAccess;
    const { network, ssh } = await host.prepareGuestNetwork({
      project,
      vm,
      access,
      paths,
      perlPath: checked.tools.perl,
      takenPorts,
      preferredSshPort: saved?.ssh?.automatic ? saved.ssh.port : undefined,
    });
    // The server starts while QEMU does; a guest needs seconds to boot before it asks for metadata.
    const metadata = network.guestfwd
      ? await host.startMetadataServer({ vmName: vm.name, paths, command: options.self })
      : undefined;
    if (metadata) started.metadataServers.push(paths);
    const record = await host.launchVm({
      project,
      vm,
      base: disk.base,
      tools: checked.tools,
      accel: accel.accel,
      paths,
      network,
      ssh,
      resume: saved,
    });
    started.vms.push({ vm, record });
    live.push({ vm, record });
    await metadata?.ready();
  }
  if (broker) {
    throwIfAborted(options.signal);
    started.broker = await host.startBroker({
      stateDir: project.stateDir,
      projectDir: project.rootDir,
      port: broker.port,
      command: options.self,
    });
    onEvent({ type: "broker-started", port: broker.port });
  }
  return live;
}

/** What preflight needs of each VM before its image exists: a BYO path, and resources from the catalog's hints. */
async function preflightPlan(host: VmHost, options: UpOptions, vms: VmConfig[]) {
  return Promise.all(
    vms.map(async (vm) => ({
      vm,
      base: vm.source.kind === "path" ? { path: vm.source.path } : undefined,
      resources: vmResources(vm, { boot: await host.bootHints(vm, options.env) }),
    })),
  );
}

/** One VM at a time, so each managed image's download and conversion read as one block of output. */
async function planVms(project: Project, host: VmHost, options: UpOptions, vms: VmConfig[]) {
  const onEvent = (event: ImageEvent) => options.onEvent({ type: "image", event });
  const plan: { vm: VmConfig; base: BaseImageLocation; resources: ReturnType<typeof vmResources> }[] = [];
  for (const vm of vms) {
    const base = await host.resolveBaseImage(vm, project, {
      env: options.env,
      offline: options.offline,
      signal: options.signal,
      onEvent,
    });
    plan.push({ vm, base, resources: vmResources(vm, base) });
  }
  return plan;
}

/** Waits for every VM in parallel; the first failure is thrown once all have settled. */
async function waitForAll(project: Project, host: VmHost, live: LiveVm[], options: UpOptions): Promise<void> {
  const { onEvent } = options;
  const results = await Promise.allSettled(
    live.map(async ({ vm, record }) => {
      const readyPattern = record.readyPattern;
      onEvent({ type: "waiting", vm: vm.name, readyPattern });
      const begun = Date.now();
      const readiness = await host.waitUntilReady(vm.name, record, {
        timeoutMs: options.timeoutMs,
        signal: options.signal,
        onTick: (elapsedMs) => onEvent({ type: "booting", vm: vm.name, elapsedMs, readyPattern }),
      });
      // Ready means usable: where castra handed the guest its key, `castra ssh` must work before we say so.
      if (!record.ssh?.keyServed) return onEvent({ type: "ready", vm: vm.name, readiness, readyPattern });
      onEvent({ type: "waiting-ssh", vm: vm.name, readiness, readyPattern });
      const ssh = await host.waitForSsh(project, vm, record, {
        timeoutMs: Math.max(0, options.timeoutMs - (Date.now() - begun)),
        signal: options.signal,
      });
      onEvent({ type: "ready", vm: vm.name, readiness, readyPattern, ssh });
    }),
  );
  const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failure) throw failure.reason;
}

/** Ctrl-C or a failure half-way: stop exactly the QEMUs, metadata servers and broker this `up` started, by pid. */
async function stopStarted(project: Project, host: VmHost, started: Started): Promise<void> {
  await Promise.all(
    started.vms.map(({ vm, record }) =>
      host.stopVm(record, vmPaths(project, vm), { timeoutMs: 0, skipPowerdown: true }).catch(() => undefined),
    ),
  );
  await Promise.all(
    started.metadataServers.map((paths) => host.stopMetadataServer(paths).catch(() => false)),
  );
  if (started.broker) await host.stopBroker(project.stateDir, started.broker).catch(() => false);
}

/** Ctrl-C: what was stopped, and what an interrupted step kept (a download's bytes, say) for the next run. */
function interrupted(started: Started, cause?: unknown): InterruptedError {
  const names = started.vms.map((s) => s.vm.name);
  const kept = cause instanceof InterruptedError ? cause.detail : undefined;
  const stopped =
    names.length > 0 ? `Stopped what this castra up had started: ${names.join(", ")}.` : undefined;
  return new InterruptedError(cause instanceof InterruptedError ? cause.headline : "Interrupted", {
    detail: [kept, stopped].filter(Boolean).join("\n") || undefined,
    hint: kept
      ? "run `castra up` again: it resumes where this one stopped"
      : "run `castra up` again to start the VMs",
  });
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new InterruptedError("Interrupted");
}
