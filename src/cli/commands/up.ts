import { resolve } from "node:path";
import { startBroker, stopBroker } from "../../broker/process.js";
import { type BrokerRecord, brokerStatus } from "../../broker/state.js";
import { DEFAULT_SUBNET } from "../../config/guest-access.js";
import { displayPath } from "../../config/load.js";
import type { Project, VmConfig } from "../../config/model.js";
import { hostPortClaims } from "../../config/ports.js";
import { InterruptedError, LaunchError } from "../../errors.js";
import { formatBytes } from "../../host/bytes.js";
import { chooseAccelerator } from "../../vm/accel.js";
import { type BaseImageLocation, inspectBaseImage, resolveBaseImage } from "../../vm/base-image.js";
import { type GuestAccess, prepareGuestNetwork, settleGuestAccess } from "../../vm/guest-access.js";
import { userNetworkAddresses } from "../../vm/guest-network.js";
import { launchVm } from "../../vm/launch.js";
import { ensureOverlay } from "../../vm/overlay.js";
import { ensureStateDirs, vmPaths } from "../../vm/paths.js";
import { preflight } from "../../vm/preflight.js";
import { lockProject } from "../../vm/project-lock.js";
import { vmResources } from "../../vm/qemu-args.js";
import { type Readiness, waitUntilReady } from "../../vm/readiness.js";
import { projectStatus, removeRuntimeFiles, type VmRunRecord } from "../../vm/state.js";
import { stopVm } from "../../vm/stop.js";
import type { CommandContext } from "../context.js";
import type { IO } from "../io.js";
import { resolveProject } from "../project.js";
import { renderImageEvents } from "../render/image-events.js";
import type { UpOptions } from "./specs.js";

export const DEFAULT_UP_TIMEOUT_S = 300;

/** A VM `up` waits for: one it launched, or one a previous `up` left starting. */
interface Waited {
  vm: VmConfig;
  record: VmRunRecord;
}

/** What this `up` started, so a failure or Ctrl-C stops exactly that. */
interface Started {
  vms: Waited[];
  broker?: BrokerRecord;
}

export async function runUp(opts: UpOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const project = await resolveProject(ctx);
  const { accel, warning } = await chooseAccelerator(opts.accel, io.env);
  await ensureStateDirs(
    project,
    project.vms.map((vm) => vmPaths(project, vm).qmpSocket),
  );
  const lock = await lockProject(project, "castra up", {
    signal: ctx.signal,
    onWait: (holder) =>
      io.info(
        `Waiting for another castra (pid ${holder.pid}, ${holder.purpose}) to finish with this project…`,
      ),
  });
  const started: Started = { vms: [] };
  let waited: Waited[];
  try {
    waited = await startMissing(project, { opts, ctx, accel, accelWarning: warning }, started);
  } catch (err) {
    await stopStarted(project, started);
    throw ctx.signal.aborted ? interrupted(started) : err;
  } finally {
    await lock.release();
  }
  if (!opts.wait || waited.length === 0) {
    printEpilogue(io, project, waited, opts.wait);
    return 0;
  }
  try {
    await waitForAll(io, waited, (opts.timeout ?? DEFAULT_UP_TIMEOUT_S) * 1000, ctx.signal);
  } catch (err) {
    if (!ctx.signal.aborted) throw err;
    await stopStarted(project, started);
    throw interrupted(started);
  }
  printEpilogue(io, project, waited, true);
  return 0;
}

interface StartContext {
  opts: UpOptions;
  ctx: CommandContext;
  accel: "kvm" | "tcg";
  accelWarning?: string;
}

/** Under the project lock: starts every VM (and the broker) not already running; returns what to wait for. */
async function startMissing(project: Project, s: StartContext, started: Started): Promise<Waited[]> {
  const { io } = s.ctx;
  const waited: Waited[] = [];
  const toStart: VmConfig[] = [];
  for (const status of await projectStatus(project)) {
    const { vm, record } = status;
    if (status.state === "running" || status.state === "starting") {
      const what = status.state === "running" ? "is already running" : "is already starting";
      io.info(`${vm.name} ${what} (pid ${record?.pid}): nothing to start`);
      if (record) waited.push({ vm, record });
      continue;
    }
    if (status.state === "shutting_down") {
      throw new LaunchError(`vm ${vm.name} is still shutting down (pid ${record?.pid})`, {
        detail: "A `castra down` began stopping it and did not finish.",
        hint: "run `castra down` to finish stopping it, then `castra up`",
      });
    }
    if (status.state === "error") {
      io.warn(
        `${vm.name} stopped unexpectedly (QEMU pid ${record?.pid} is gone): starting it again on the same overlay`,
      );
    }
    await removeRuntimeFiles(status.paths, record);
    toStart.push(vm);
  }
  const broker =
    project.broker && (await brokerStatus(project.stateDir)).state !== "running" ? project.broker : undefined;
  if (toStart.length === 0 && !broker) return waited;

  if (s.accelWarning && toStart.length > 0) io.warn(s.accelWarning);
  const locations = await resolveBaseImages(toStart, project, s);
  const plan = toStart.map((vm, i) => {
    const base = locations[i] as (typeof locations)[number];
    return { vm, base, resources: vmResources(vm, base) };
  });
  const checked = await preflight({
    project,
    vms: plan,
    brokerPort: broker?.port,
    force: Boolean(s.opts.force),
    env: io.env,
  });
  for (const w of checked.warnings) io.warn(`${w} (continuing because of --force)`);
  const { accesses, warnings } = await settleGuestAccess(project, plan);
  for (const w of warnings) io.warn(w);
  const takenPorts = new Set(hostPortClaims(project).flatMap((c) => (c.protocol === "tcp" ? [c.port] : [])));
  // QEMU runs this same CLI once per guest connection to the metadata address.
  const responder = { nodePath: process.execPath, cliPath: resolve(process.argv[1] ?? "") };

  for (const [i, { vm, base, resources }] of plan.entries()) {
    throwIfAborted(s.ctx.signal);
    const resolved = await inspectBaseImage(checked.tools.qemuImg, base);
    const overlay = await ensureOverlay(checked.tools.qemuImg, vm.overlay, resolved, vm.name);
    if (overlay === "created")
      io.info(`Created overlay ${displayPath(vm.overlay, io.cwd)} on ${displayPath(resolved.path, io.cwd)}`);
    io.info(
      `Starting ${vm.name} (${s.accel}, ${resources.cpus} CPU, ${formatBytes(resources.memoryBytes)})…`,
    );
    const paths = vmPaths(project, vm);
    const access = accesses[i] as GuestAccess;
    const { network, ssh } = await prepareGuestNetwork({ project, vm, access, paths, responder, takenPorts });
    const record = await launchVm({
      project,
      vm,
      base: resolved,
      tools: checked.tools,
      accel: s.accel,
      paths,
      network,
      ssh,
    });
    started.vms.push({ vm, record });
    waited.push({ vm, record });
  }
  if (broker) {
    throwIfAborted(s.ctx.signal);
    started.broker = await startBroker({
      stateDir: project.stateDir,
      projectDir: project.rootDir,
      port: broker.port,
      command: { execPath: process.execPath, execArgv: process.execArgv, entry: process.argv[1] ?? "" },
    });
    io.info(`Host broker listening on 127.0.0.1:${broker.port}`);
  }
  return waited;
}

/** One VM at a time, so each managed image's download and conversion read as one block of output. */
async function resolveBaseImages(vms: VmConfig[], project: Project, s: StartContext) {
  const { io, signal } = s.ctx;
  const onEvent = vms.some((vm) => vm.source.kind === "managed") ? renderImageEvents(io) : undefined;
  const locations: BaseImageLocation[] = [];
  for (const vm of vms) {
    locations.push(
      await resolveBaseImage(vm, project, { env: io.env, offline: s.opts.offline, signal, onEvent }),
    );
  }
  return locations;
}

/** Waits for every VM in parallel: a live line per VM on a TTY, plain lines elsewhere. */
async function waitForAll(io: IO, waited: Waited[], timeoutMs: number, signal: AbortSignal): Promise<void> {
  const live = io.live();
  const c = io.err.color;
  const tty = io.err.isTTY;
  if (!tty)
    for (const { vm, record } of waited)
      io.info(`Waiting for ${vm.name} to be ready (${waitingFor(record)})…`);
  const results = await Promise.allSettled(
    waited.map(async ({ vm, record }) => {
      const ready = await waitUntilReady(vm.name, record, {
        timeoutMs,
        signal,
        onTick: (ms) =>
          live.set(
            vm.name,
            `${c.cyan("…")} ${vm.name}: booting, ${seconds(ms)} (waiting for ${waitingFor(record)})`,
          ),
      });
      if (tty) live.set(vm.name, `${c.green("✓")} ${readyLine(vm.name, record, ready)}`);
      else io.success(readyLine(vm.name, record, ready));
    }),
  );
  live.done();
  const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failure) throw failure.reason;
}

function waitingFor(record: VmRunRecord): string {
  return record.readyPattern ? `"${record.readyPattern}" on its serial console` : "QEMU to report it running";
}

function readyLine(name: string, record: VmRunRecord, ready: Readiness): string {
  const how = ready.by === "pattern" ? `${record.readyPattern} seen` : "running";
  return `${name} is ready (${how} after ${seconds(ready.elapsedMs)})`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Where to look and how to stop: the last lines of every successful `up`. */
function printEpilogue(io: IO, project: Project, waited: Waited[], waitedForReady: boolean): void {
  if (waited.length === 0) {
    io.print("No VMs to start.");
    return;
  }
  if (!waitedForReady)
    io.print(`Started without waiting (--no-wait): \`castra status\` shows when the VMs are ready.`);
  for (const { vm, record } of waited) {
    io.print(`${vm.name}: serial console log in ${displayPath(record.serialLog, io.cwd)}`);
    if (record.ssh) {
      const command = project.vms.length > 1 ? `castra ssh ${vm.name}` : "castra ssh";
      io.print(
        `${vm.name}: \`${command}\` logs in as ${record.ssh.user} (SSH on ${record.ssh.host}:${record.ssh.port})`,
      );
    }
  }
  if (project.broker) {
    const gateway = userNetworkAddresses(DEFAULT_SUBNET).gateway;
    io.print(
      `Host broker: 127.0.0.1:${project.broker.port} (guests reach it at their gateway, ${gateway}:${project.broker.port})`,
    );
  }
  io.print("Follow the logs with `castra logs --follow`; stop everything with `castra down`.");
}

/** Ctrl-C or a failure half-way: stop exactly the QEMUs (and broker) this `up` started, by pid. */
async function stopStarted(project: Project, started: Started): Promise<void> {
  await Promise.all(
    started.vms.map(({ vm, record }) =>
      stopVm(record, vmPaths(project, vm), { timeoutMs: 0, skipPowerdown: true }).catch(() => undefined),
    ),
  );
  if (started.broker) await stopBroker(project.stateDir, started.broker).catch(() => false);
}

function interrupted(started: Started): InterruptedError {
  const names = started.vms.map((s) => s.vm.name);
  return new InterruptedError("Interrupted", {
    detail: names.length > 0 ? `Stopped what this castra up had started: ${names.join(", ")}.` : undefined,
    hint: "run `castra up` again to start the VMs",
  });
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new InterruptedError("Interrupted");
}
