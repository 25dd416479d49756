import type { Project, VmConfig } from "../config/model.js";
import { DataError, InputMissingError, UsageError } from "../errors.js";
import { exists } from "../host/files.js";
import { checkSnapshotName, type Snapshot } from "../vm/snapshots.js";
import type { VmStatus } from "../vm/state.js";
import type { ProjectEvent } from "./events.js";
import { remountShares, withSharesReleased } from "./shares.js";
import type { VmHost } from "./vm-host.js";

export interface SnapshotOptions {
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  onEvent: (event: ProjectEvent) => void;
}

/** What a snapshot command did: whether it went through the running QEMU (memory included) or the disk only. */
export interface SnapshotOutcome {
  live: boolean;
  snapshot?: Snapshot;
}

/**
 * `castra snapshot save|restore|delete NAME` on one VM, under the project lock. A running VM is snapshotted
 * whole (disk and memory) and restored to that moment; a stopped VM's disk is snapshotted or rewound.
 */
export async function changeVmSnapshot(
  project: Project,
  host: VmHost,
  vm: VmConfig,
  action: "save" | "restore" | "delete",
  name: string,
  options: SnapshotOptions,
): Promise<SnapshotOutcome> {
  checkSnapshotName(name);
  await host.ensureStateDirs(project);
  const lock = await host.lockProject(project, `castra snapshot ${action}`, {
    signal: options.signal,
    onWait: (holder) => options.onEvent({ type: "lock-wait", holder }),
  });
  try {
    const status = await usableStatus(project, host, vm, `snapshot ${action}`);
    const { qemuImg } = await host.hostTools(options.env);
    const snapshots = await host.listSnapshots(qemuImg, vm);
    const existing = snapshots.find((s) => s.name === name);
    const live = status.state === "running" || status.state === "starting" ? status.record : undefined;
    if (action === "save" && existing) {
      throw new DataError(`vm ${vm.name} already has a snapshot named ${name}`, {
        detail: `It was taken ${existing.createdAt.toISOString()}.`,
        hint: `pick another name, or \`castra snapshot delete --vm ${vm.name} ${name}\` first`,
      });
    }
    if (action !== "save" && !existing) throw missingSnapshot(vm, name, snapshots);
    if (action === "restore" && live && existing?.stateBytes === 0) {
      throw new UsageError(`${name} holds no memory: it was taken while vm ${vm.name} was stopped`, {
        detail:
          "A running VM can only go back to a snapshot of a running VM; a disk-only snapshot rewinds a stopped one.",
        hint: `stop it first (\`castra down ${vm.name}\`), then \`castra snapshot restore --vm ${vm.name} ${name}\``,
      });
    }
    const change = () => host.changeSnapshot({ action, vm, name, qemuImg, live });
    // A live save or restore goes through QEMU's saved memory, which never holds a mounted share.
    if (live && action === "save")
      await withSharesReleased(project, host, { vm, record: live }, options, change, true);
    else await change();
    if (live && action === "restore") await remountShares(project, host, { vm, record: live }, options);
    const after =
      action === "delete" ? undefined : (await host.listSnapshots(qemuImg, vm)).find((s) => s.name === name);
    return { live: live !== undefined, snapshot: after };
  } finally {
    await lock.release();
  }
}

/** `castra snapshot list`: the VM's snapshots, oldest first. */
export async function listVmSnapshots(
  host: VmHost,
  vm: VmConfig,
  env: NodeJS.ProcessEnv,
): Promise<Snapshot[]> {
  const { qemuImg } = await host.hostTools(env);
  const snapshots = await host.listSnapshots(qemuImg, vm);
  return snapshots.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
}

/** The VM's state, refused while it is suspended or shutting down, or has no disk yet. */
async function usableStatus(
  project: Project,
  host: VmHost,
  vm: VmConfig,
  command: string,
): Promise<VmStatus> {
  const status = await host.vmStatus(project, vm);
  if (status.state === "suspended") {
    throw new UsageError(`vm ${vm.name} is suspended`, {
      detail:
        "Its saved memory belongs to the disk as it is now; changing the disk under it would corrupt the guest.",
      hint: `resume it first (\`castra up ${vm.name}\`), or throw the saved state away (\`castra down ${vm.name}\`), then \`castra ${command}\``,
    });
  }
  if (status.state === "shutting_down") {
    throw new UsageError(`vm ${vm.name} is shutting down`, {
      hint: `wait for \`castra down\` to finish, then \`castra ${command}\``,
    });
  }
  if (!(await exists(vm.overlay))) {
    throw new InputMissingError(`vm ${vm.name} has no disk yet`, {
      detail: `Its overlay ${vm.overlay} does not exist.`,
      hint: `\`castra up ${vm.name}\` creates it`,
    });
  }
  return status;
}

function missingSnapshot(vm: VmConfig, name: string, snapshots: Snapshot[]): InputMissingError {
  const known = snapshots.map((s) => s.name).join(", ") || "none";
  return new InputMissingError(`vm ${vm.name} has no snapshot named ${name}`, {
    detail: `Its snapshots: ${known}.`,
    hint: `\`castra snapshot list --vm ${vm.name}\` shows them with their dates`,
  });
}
