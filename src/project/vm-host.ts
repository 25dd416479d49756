import type { BrokerLaunch } from "../broker/process.js";
import type { BrokerRecord, BrokerStatus } from "../broker/state.js";
import type { Project, VmConfig } from "../config/model.js";
import type { Lock, LockHolder } from "../host/lock.js";
import type { NarrowedMode } from "../host/private-files.js";
import type { HostTools } from "../host/tools.js";
import type { MetadataServerHandle } from "../metadata/process.js";
import type { GuestCommandResult } from "../ssh/guest-command.js";
import type { AccelDecision } from "../vm/accel.js";
import type {
  BaseImageLocation,
  BootProfile,
  ManagedImageOptions,
  ResolvedBaseImage,
} from "../vm/base-image.js";
import type { GuestAccess, GuestNetworkInput, GuestNetworkPlan, SshEndpoint } from "../vm/guest-access.js";
import type { ShareOutcome } from "../vm/guest-mounts.js";
import type { ProvisionRecord } from "../vm/guest-records.js";
import type { GuestSession } from "../vm/guest-session.js";
import type { LaunchInput } from "../vm/launch.js";
import type { OverlayOutcome } from "../vm/overlay.js";
import type { VmPaths } from "../vm/paths.js";
import type { PreflightInput, PreflightResult } from "../vm/preflight.js";
import type { PlannedStep, ProvisionPlan } from "../vm/provision.js";
import type { Readiness, ReadyOptions } from "../vm/readiness.js";
import type { SuspendRecord } from "../vm/saved-state.js";
import type { Snapshot } from "../vm/snapshots.js";
import type { SshReadiness } from "../vm/ssh-ready.js";
import type { VmRunRecord, VmStatus } from "../vm/state.js";
import type { StopOptions, StoppedBy } from "../vm/stop.js";

/** Which VM's metadata server to start, and how to run castra for it. */
export interface MetadataServerInput {
  vmName: string;
  paths: VmPaths;
  command: { execPath: string; execArgv: string[]; entry: string };
}

/**
 * Everything starting and stopping a project does to the host: the project lock, processes (QEMU, the
 * metadata servers, the broker), disks and images, host ports. `realVmHost` does it for real; tests pass a fake, so the
 * orchestration in `up.ts` and `down.ts` runs in process without QEMU or a network.
 */
export interface VmHost {
  lockProject(
    project: Project,
    purpose: string,
    options: { signal: AbortSignal; onWait: (holder: LockHolder) => void },
  ): Promise<Lock>;
  vmStatus(project: Project, vm: VmConfig): Promise<VmStatus>;
  removeRuntimeFiles(paths: VmPaths, record?: VmRunRecord): Promise<void>;
  brokerStatus(stateDir: string): Promise<BrokerStatus>;
  chooseAccelerator(flag: string | undefined, env: NodeJS.ProcessEnv): Promise<AccelDecision>;
  /** Notes the project in the per-user registry `castra list` reads. */
  rememberProject(project: Project, env: NodeJS.ProcessEnv): Promise<void>;
  /** `.castra/`, `run/`, `logs/` and the short socket directory a VM may need; returns the modes it narrowed. */
  ensureStateDirs(project: Project): Promise<NarrowedMode[]>;
  /** The catalog profile's hints for a managed VM, before its image is downloaded (unknown images fail here). */
  bootHints(vm: VmConfig, env: NodeJS.ProcessEnv): Promise<BootProfile | undefined>;
  resolveBaseImage(vm: VmConfig, project: Project, options: ManagedImageOptions): Promise<BaseImageLocation>;
  preflight(input: PreflightInput): Promise<PreflightResult>;
  settleGuestAccess(
    project: Project,
    vms: { vm: VmConfig; base: BaseImageLocation }[],
  ): Promise<{ accesses: GuestAccess[]; warnings: string[] }>;
  /** Reads the base image's format and makes sure the VM's overlay is a qcow2 on it. */
  prepareDisk(
    qemuImg: string,
    vm: VmConfig,
    base: BaseImageLocation,
  ): Promise<{ base: ResolvedBaseImage; overlay: OverlayOutcome }>;
  prepareGuestNetwork(input: GuestNetworkInput): Promise<{ network: GuestNetworkPlan; ssh?: SshEndpoint }>;
  /** Starts the VM's metadata server (from the configuration `prepareGuestNetwork` wrote) without waiting. */
  startMetadataServer(input: MetadataServerInput): Promise<MetadataServerHandle>;
  /** Stops the VM's metadata server if one runs (a leftover too) and removes its files; true when one ran. */
  stopMetadataServer(paths: VmPaths): Promise<boolean>;
  launchVm(input: LaunchInput): Promise<VmRunRecord>;
  waitUntilReady(vmName: string, record: VmRunRecord, options: ReadyOptions): Promise<Readiness>;
  /** Waits until the guest's SSH server takes the project key (see `vm/ssh-ready.ts`). */
  waitForSsh(
    project: Project,
    vm: VmConfig,
    record: VmRunRecord,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<SshReadiness>;
  stopVm(record: VmRunRecord, paths: VmPaths, options: StopOptions): Promise<StoppedBy>;
  startBroker(launch: BrokerLaunch): Promise<BrokerRecord>;
  stopBroker(stateDir: string, record: BrokerRecord | undefined): Promise<boolean>;
  /** Host tools for work outside `up` (suspend, snapshots, destroy): found on PATH, or exit 72. */
  hostTools(env: NodeJS.ProcessEnv): Promise<HostTools>;
  /** Saves a running VM's memory and devices into its overlay and ends QEMU (see `vm/suspend.ts`). */
  suspendVm(input: {
    vm: VmConfig;
    record: VmRunRecord;
    paths: VmPaths;
    qemuImg: string;
    signal?: AbortSignal;
  }): Promise<SuspendRecord>;
  /** Forgets a suspended VM's saved state: its snapshot and its record. */
  discardSavedState(qemuImg: string, vm: VmConfig): Promise<void>;
  listSnapshots(qemuImg: string, vm: VmConfig): Promise<Snapshot[]>;
  /** save, restore or delete a named snapshot; on a running VM (`live`) through QEMU, else with qemu-img. */
  changeSnapshot(request: SnapshotRequest): Promise<void>;
  /** Deletes what belongs to one VM alone (overlay, saved state, records, host key); returns the paths removed. */
  removeVmFiles(project: Project, vm: VmConfig): Promise<string[]>;
  /** Before anything starts: each mount's host directory and each provisioning script is there (65, 66). */
  checkGuestSetup(project: Project, vm: VmConfig): Promise<void>;
  /** Mounts the VM's shares in its running guest over SSH; one outcome per share, never a throw for the guest. */
  mountShares(session: GuestSession): Promise<ShareOutcome[]>;
  /** Unmounts them (QEMU cannot save the memory of a guest with a share mounted). */
  unmountShares(session: GuestSession): Promise<ShareOutcome[]>;
  /** The VM's provisioning steps with their digests, and what already ran in its overlay. */
  planProvisioning(project: Project, vm: VmConfig): Promise<ProvisionPlan>;
  /** Runs one step in the guest as root, logging its output to `logs/<vm>-provision.log`. */
  runProvisionStep(
    session: GuestSession,
    step: PlannedStep,
    onLine: (line: string) => void,
  ): Promise<GuestCommandResult>;
  saveProvisionRecord(project: Project, vm: VmConfig, record: ProvisionRecord): Promise<void>;
}

export interface SnapshotRequest {
  action: "save" | "restore" | "delete";
  vm: VmConfig;
  name: string;
  qemuImg: string;
  /** The running QEMU, when there is one. */
  live?: VmRunRecord;
}
