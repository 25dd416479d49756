import type { BrokerRecord, BrokerStatus } from "../../src/broker/state.js";
import type { Project, VmConfig } from "../../src/config/model.js";
import type { CastraError } from "../../src/errors.js";
import { InputMissingError, InterruptedError, LaunchError } from "../../src/errors.js";
import type { LockHolder } from "../../src/host/lock.js";
import type { ImageEvent } from "../../src/images/events.js";
import type { SnapshotRequest, VmHost } from "../../src/project/vm-host.js";
import type { ShareOutcome } from "../../src/vm/guest-mounts.js";
import {
  overlayIdentity,
  type ProvisionRecord,
  readProvisionRecord,
  saveProvisionRecord,
} from "../../src/vm/guest-records.js";
import type { GuestSession } from "../../src/vm/guest-session.js";
import { vmPaths } from "../../src/vm/paths.js";
import type { PlannedStep } from "../../src/vm/provision.js";
import { stepLabel } from "../../src/vm/provision.js";
import type { SuspendRecord } from "../../src/vm/saved-state.js";
import { manualMountLine, shareTag } from "../../src/vm/shares.js";
import type { Snapshot } from "../../src/vm/snapshots.js";
import type { VmRunRecord, VmState, VmStatus } from "../../src/vm/state.js";
import type { StopOptions, StoppedBy } from "../../src/vm/stop.js";

/** A VM as the fake host knows it: its state and, when it has one, its run record. */
interface FakeVm {
  state: VmState;
  record: VmRunRecord;
  saved?: SuspendRecord;
}

export interface FakeVmHostOptions {
  /** How long each guest takes to become ready (ticks every 10 ms meanwhile). */
  bootMs?: number;
  /** These VMs never become ready: waiting for them lasts until Ctrl-C or the timeout. */
  neverReady?: string[];
  /** Launching these VMs fails as QEMU exiting at once would. */
  failLaunch?: string[];
  /** These VMs' metadata servers exit instead of listening. */
  failMetadata?: string[];
  /** Preflight fails with this error (nothing may be launched then). */
  preflightError?: CastraError;
  /** Image events the managed VMs' base image resolution emits. */
  imageEvents?: ImageEvent[];
  /** Resolving a managed image waits until Ctrl-C (a download in progress). */
  hangInImages?: boolean;
  /** `up` finds the project lock held by this castra first. */
  lockHolder?: LockHolder;
  /** How `stopVm` ends each VM when ACPI is allowed. */
  stoppedBy?: StoppedBy;
  /** These VMs boot but their SSH server never takes the key. */
  noSsh?: string[];
  /** Guests ignore the ACPI power button: `stopVm` waits its whole timeout (or until Ctrl-C), then SIGTERM. */
  ignoreAcpi?: boolean;
  /** Mounting fails in these VMs' guests, for this reason (no 9p, no login...). */
  mountFails?: Record<string, string>;
  /** Unmounting fails in these VMs' guests (a share in use). */
  unmountFails?: Record<string, string>;
  /** A provisioning step whose label contains the key exits with this status (after printing "boom"). */
  failingSteps?: Record<string, number>;
  /** A provisioning step whose label contains this waits until Ctrl-C. */
  hangingStep?: string;
  /** A mount host or script path containing this is missing (exit 66 at `up`). */
  missingPath?: string;
}

let nextPid = 900_000;

/**
 * A `VmHost` without QEMU, qemu-img, images or a network: VMs are entries in a map, and every action that
 * changes the world is written to `actions` ("launch web", "stop web skip-powerdown"...) for tests to read.
 */
export class FakeVmHost implements VmHost {
  readonly vms = new Map<string, FakeVm>();
  readonly actions: string[] = [];
  /** Snapshots by VM name. */
  readonly snapshots = new Map<string, Snapshot[]>();
  /** VMs whose metadata server runs. */
  readonly metadataServers = new Set<string>();
  broker?: BrokerRecord;
  constructor(private readonly options: FakeVmHostOptions = {}) {}

  /** Puts `vm` in `state` as if an earlier castra had started it (a live VM with its metadata server). */
  seed(project: Project, vmName: string, state: VmState): VmRunRecord {
    const record = this.record(project, vmName);
    this.vms.set(vmName, { state, record });
    if (state === "running" || state === "starting" || state === "shutting_down")
      this.metadataServers.add(vmName);
    return record;
  }

  private record(project: Project, vmName: string): VmRunRecord {
    const paths = vmPaths(project, { name: vmName });
    return {
      pid: nextPid++,
      argv: ["qemu-system-x86_64", "-name", `guest=castra:${project.name}:${vmName}`],
      startedAt: new Date().toISOString(),
      accel: "tcg",
      baseImage: "/images/base.qcow2",
      overlay: `${project.stateDir}/${vmName}-overlay.qcow2`,
      cpus: 1,
      memoryBytes: 256 * 1024 * 1024,
      forwards: [],
      readyPattern: "login:",
      qmpSocket: paths.qmpSocket,
      serialLog: paths.serialLog,
      qemuLog: paths.qemuLog,
      ssh: { host: "127.0.0.1", port: 40_022, user: "alpine", automatic: true, keyServed: true },
    };
  }

  async lockProject(_project: Project, purpose: string, options: { onWait: (holder: LockHolder) => void }) {
    if (this.options.lockHolder) options.onWait(this.options.lockHolder);
    this.actions.push(`lock ${purpose}`);
    return { release: async () => void this.actions.push("unlock") };
  }

  /** Puts `vm` in the suspended state, as `castra suspend` would have left it. */
  seedSuspended(project: Project, vmName: string): SuspendRecord {
    const saved = savedState(this.record(project, vmName));
    this.vms.set(vmName, { state: "suspended", record: this.record(project, vmName), saved });
    return saved;
  }

  async rememberProject() {}

  async vmStatus(project: Project, vm: VmConfig): Promise<VmStatus> {
    const known = this.vms.get(vm.name);
    const paths = vmPaths(project, vm);
    if (!known) return { vm, state: "stopped", paths };
    if (known.state === "suspended") return { vm, state: "suspended", paths, suspended: known.saved };
    const lastLogLines = known.state === "error" ? ["qemu: terminating on signal 9"] : undefined;
    return { vm, state: known.state, paths, record: known.record, lastLogLines };
  }

  async removeRuntimeFiles(paths: { pidFile: string }, record?: VmRunRecord) {
    if (record) this.actions.push(`clean ${paths.pidFile.replace(/^.*\/run\//, "run/")}`);
    for (const [name, vm] of this.vms)
      if (vm.state === "error" || vm.state === "stopped") this.vms.delete(name);
  }

  async brokerStatus(): Promise<BrokerStatus> {
    return { state: this.broker ? "running" : "stopped", record: this.broker, hellos: {} };
  }

  async chooseAccelerator(flag: string | undefined) {
    return flag === "kvm" ? { accel: "kvm" as const } : { accel: "tcg" as const };
  }

  async ensureStateDirs() {
    return [];
  }

  async bootHints(vm: VmConfig) {
    return vm.source.kind === "managed"
      ? { cpus: 1, memoryBytes: 512 * 1024 * 1024, readyPattern: "login:" }
      : undefined;
  }

  async resolveBaseImage(
    vm: VmConfig,
    _project: Project,
    options: { onEvent?: (e: ImageEvent) => void; signal?: AbortSignal },
  ) {
    if (vm.source.kind === "path") return { path: vm.source.path };
    for (const event of this.options.imageEvents ?? []) options.onEvent?.(event);
    if (this.options.hangInImages) await untilAborted(options.signal);
    return {
      path: "/images/alpine/rootfs.qcow2",
      boot: { readyPattern: "login:", cpus: 1, memoryBytes: 512 * 1024 * 1024 },
    };
  }

  async preflight() {
    if (this.options.preflightError) throw this.options.preflightError;
    return {
      tools: {
        qemuSystem: "/usr/bin/qemu-system-x86_64",
        qemuImg: "/usr/bin/qemu-img",
        perl: "/usr/bin/perl",
      },
      warnings: [],
    };
  }

  async settleGuestAccess(_project: Project, vms: { vm: VmConfig }[]) {
    const accesses = vms.map(() => ({
      subnet: "169.254.0.0/16",
      servesMetadata: true,
      flavour: "ec2" as const,
      publicKeys: [],
      sshUser: "alpine",
    }));
    return { accesses, warnings: [] };
  }

  async prepareDisk(_qemuImg: string, vm: VmConfig, base: { path: string }) {
    this.actions.push(`disk ${vm.name}`);
    return { base: { ...base, format: "qcow2" }, overlay: "created" as const };
  }

  async prepareGuestNetwork(input: { access: { servesMetadata: boolean }; perlPath?: string }) {
    const guestfwd = input.access.servesMetadata ? `tcp:169.254.169.254:80-cmd:${input.perlPath}` : undefined;
    return { network: { subnet: "169.254.0.0/16", mac: "52:54:00:00:00:01", guestfwd } };
  }

  async startMetadataServer(input: { vmName: string; paths: { metadataSocket: string } }) {
    const name = input.vmName;
    this.actions.push(`metadata start ${name}`);
    this.metadataServers.add(name);
    const record = {
      pid: nextPid++,
      argv: ["castra", "__metadata-server"],
      startedAt: new Date().toISOString(),
      socket: input.paths.metadataSocket,
    };
    const fails = this.options.failMetadata?.includes(name);
    return {
      record,
      ready: async () => {
        if (!fails) return;
        this.metadataServers.delete(name);
        throw new LaunchError(
          `The metadata server of vm ${name} did not start: it exited (status 65) while starting`,
        );
      },
    };
  }

  async stopMetadataServer(paths: { pidFile: string }) {
    const name = paths.pidFile.replace(/^.*\/run\/|\.pid$/g, "");
    if (!this.metadataServers.delete(name)) return false;
    this.actions.push(`metadata stop ${name}`);
    return true;
  }

  async launchVm(input: { project: Project; vm: VmConfig; resume?: SuspendRecord }) {
    const name = input.vm.name;
    this.actions.push(`${input.resume ? "resume" : "launch"} ${name}`);
    if (this.options.failLaunch?.includes(name))
      throw new LaunchError(`vm ${name} failed to start: QEMU exited with status 1 while starting`);
    const record = this.record(input.project, name);
    if (input.resume) record.resumedFrom = input.resume.savedAt;
    this.vms.set(name, { state: "starting", record });
    return record;
  }

  async waitUntilReady(
    vmName: string,
    record: VmRunRecord,
    options: { timeoutMs: number; signal?: AbortSignal; onTick?: (ms: number) => void },
  ) {
    const began = Date.now();
    const bootMs = this.options.neverReady?.includes(vmName)
      ? Number.POSITIVE_INFINITY
      : (this.options.bootMs ?? 20);
    for (;;) {
      if (options.signal?.aborted)
        throw new InterruptedError("Interrupted while waiting for the VMs to boot");
      const elapsed = Date.now() - began;
      options.onTick?.(elapsed);
      if (elapsed >= bootMs) break;
      if (elapsed >= options.timeoutMs)
        throw new LaunchError(`vm ${vmName} was not ready within ${Math.round(options.timeoutMs / 1000)} s`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const vm = [...this.vms.values()].find((v) => v.record === record);
    if (vm) vm.state = "running";
    return { elapsedMs: Date.now() - began, by: "pattern" as const };
  }

  async waitForSsh(_project: Project, vm: VmConfig, record: VmRunRecord, options: { timeoutMs: number }) {
    if (this.options.noSsh?.includes(vm.name)) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(options.timeoutMs, 50)));
      throw new LaunchError(
        `vm ${vm.name} booted, but its SSH server did not accept the project key in time`,
      );
    }
    return { by: "ssh" as const, elapsedMs: Date.now() - Date.parse(record.startedAt) };
  }

  async stopVm(record: VmRunRecord, _paths: unknown, options: StopOptions) {
    const name = [...this.vms].find(([, v]) => v.record === record)?.[0] ?? "?";
    this.actions.push(`stop ${name}${options.skipPowerdown ? " skip-powerdown" : ""}`);
    let by: StoppedBy = options.skipPowerdown ? "sigterm" : (this.options.stoppedBy ?? "acpi");
    if (!options.skipPowerdown && this.options.ignoreAcpi) {
      // Ten ticks stand for the timeout, so tests see the progress without waiting for it.
      for (let tick = 1; tick <= 10 && !options.signal?.aborted; tick++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const waitedMs = (options.timeoutMs * tick) / 10;
        options.onEvent?.({ kind: "waiting", waitedMs, timeoutMs: options.timeoutMs });
      }
      const aborted = options.signal?.aborted;
      options.onEvent?.(
        aborted ? { kind: "interrupted" } : { kind: "powerdown-timeout", waitedMs: options.timeoutMs },
      );
      by = "sigterm";
    }
    this.vms.delete(name);
    return by;
  }

  async startBroker(launch: { port: number }) {
    this.actions.push(`broker start ${launch.port}`);
    this.broker = {
      pid: nextPid++,
      argv: ["castra", "broker"],
      port: launch.port,
      startedAt: new Date().toISOString(),
    };
    return this.broker;
  }

  async stopBroker(_stateDir: string, record: BrokerRecord | undefined) {
    this.actions.push("broker stop");
    const was = Boolean(record && this.broker);
    this.broker = undefined;
    return was;
  }

  async hostTools() {
    return { qemuSystem: "/usr/bin/qemu-system-x86_64", qemuImg: "/usr/bin/qemu-img" };
  }

  async suspendVm(input: { vm: VmConfig; record: VmRunRecord }) {
    this.actions.push(`suspend ${input.vm.name}`);
    const saved = savedState(input.record);
    this.vms.set(input.vm.name, { state: "suspended", record: input.record, saved });
    return saved;
  }

  async discardSavedState(_qemuImg: string, vm: VmConfig) {
    this.actions.push(`discard ${vm.name}`);
    this.vms.delete(vm.name);
  }

  async listSnapshots(_qemuImg: string, vm: VmConfig) {
    return [...(this.snapshots.get(vm.name) ?? [])];
  }

  async changeSnapshot(request: SnapshotRequest) {
    const { action, vm, name, live } = request;
    this.actions.push(`snapshot ${action} ${vm.name} ${name}${live ? " live" : ""}`);
    const list = this.snapshots.get(vm.name) ?? [];
    if (action === "save")
      list.push({ name, stateBytes: live ? 64 * 1024 * 1024 : 0, createdAt: new Date() });
    if (action === "delete")
      list.splice(
        list.findIndex((s) => s.name === name),
        1,
      );
    this.snapshots.set(vm.name, list);
  }

  async removeVmFiles(project: Project, vm: VmConfig) {
    this.actions.push(`remove ${vm.name}`);
    this.snapshots.delete(vm.name);
    return [vm.overlay, `${project.stateDir}/ssh/known_hosts (its host key)`];
  }

  async checkGuestSetup(_project: Project, vm: VmConfig) {
    const missing = this.options.missingPath;
    const paths = [
      ...(vm.mounts ?? []).map((m) => m.host),
      ...(vm.provision ?? []).flatMap((p) => (p.kind === "script" ? [p.path] : [])),
    ];
    const gone = missing === undefined ? undefined : paths.find((p) => p.includes(missing));
    if (gone) throw new InputMissingError(`mount of vm ${vm.name}: ${gone} does not exist`);
  }

  async mountShares(session: GuestSession): Promise<ShareOutcome[]> {
    this.actions.push(`mount ${session.vm.name}`);
    return this.shares(session, this.options.mountFails?.[session.vm.name]);
  }

  async unmountShares(session: GuestSession): Promise<ShareOutcome[]> {
    this.actions.push(`unmount ${session.vm.name}`);
    return this.shares(session, this.options.unmountFails?.[session.vm.name]);
  }

  private shares(session: GuestSession, reason: string | undefined): ShareOutcome[] {
    return (session.vm.mounts ?? []).map((mount, index) => {
      const tag = shareTag(index);
      return reason === undefined
        ? { index, tag, guest: mount.guest, state: "mounted" as const }
        : {
            index,
            tag,
            guest: mount.guest,
            state: "failed" as const,
            reason,
            manual: manualMountLine(index, mount),
          };
    });
  }

  async planProvisioning(project: Project, vm: VmConfig) {
    const steps: PlannedStep[] = (vm.provision ?? []).map((step, index) => {
      const text = step.kind === "run" ? step.command : step.path;
      return {
        index,
        step,
        digest: `${step.kind}:${text}`,
        label: stepLabel(project, step),
        input: Buffer.from(text),
      };
    });
    // Records are real files in the test's project (status reads them): only the guest is pretend.
    const record = (await readProvisionRecord(project, vm)) ?? {
      overlay: await overlayIdentity(vm.overlay),
      done: {},
    };
    return { steps, record };
  }

  async runProvisionStep(session: GuestSession, step: PlannedStep, onLine: (line: string) => void) {
    this.actions.push(`step ${session.vm.name} ${step.label}`);
    if (this.options.hangingStep && step.label.includes(this.options.hangingStep)) {
      await untilAborted(session.signal).catch(() => undefined);
      return { code: 143, tail: [] };
    }
    const failing = Object.entries(this.options.failingSteps ?? {}).find(([key]) => step.label.includes(key));
    if (failing) {
      onLine("boom");
      return { code: failing[1], tail: ["boom"] };
    }
    onLine(`ran ${step.label}`);
    return { code: 0, tail: [`ran ${step.label}`] };
  }

  async saveProvisionRecord(project: Project, vm: VmConfig, record: ProvisionRecord) {
    this.actions.push(`record ${vm.name}`);
    await saveProvisionRecord(project, vm, record);
  }
}

function savedState(record: VmRunRecord): SuspendRecord {
  return {
    savedAt: new Date().toISOString(),
    fingerprint: { qemuVersion: "7.2.22", cpus: record.cpus, memoryBytes: record.memoryBytes, hardware: "x" },
    overlay: { size: 1, mtimeMs: 1 },
    stateBytes: 96 * 1024 * 1024,
    ...(record.ssh ? { ssh: record.ssh } : {}),
  };
}

/** A download that runs until Ctrl-C, then ends as the real one does: saying what it kept. */
function untilAborted(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () =>
      reject(
        new InterruptedError("Download interrupted", {
          detail: "kept 1.0 KiB of 4.0 KiB in rootfs.qcow2.partial",
        }),
      );
    if (signal?.aborted) fail();
    else signal?.addEventListener("abort", fail, { once: true });
  });
}
