import { startBroker, stopBroker } from "../broker/process.js";
import { brokerStatus } from "../broker/state.js";
import { exists } from "../host/files.js";
import { requireHostTools } from "../host/tools.js";
import { refuseReferences } from "../images/disk-references.js";
import { type MetadataServerFiles, startMetadataServer, stopMetadataServer } from "../metadata/process.js";
import { chooseAccelerator } from "../vm/accel.js";
import { bootHints, inspectBaseImage, resolveBaseImage } from "../vm/base-image.js";
import { prepareGuestNetwork, settleGuestAccess } from "../vm/guest-access.js";
import { checkMounts, mountShares, unmountShares } from "../vm/guest-mounts.js";
import { saveProvisionRecord } from "../vm/guest-records.js";
import { launchVm } from "../vm/launch.js";
import { ensureOverlay } from "../vm/overlay.js";
import { ensureStateDirs, type VmPaths } from "../vm/paths.js";
import { preflight } from "../vm/preflight.js";
import { checkScripts, planProvisioning, runProvisionStep } from "../vm/provision.js";
import { waitUntilReady } from "../vm/readiness.js";
import { removeSuspendRecord, SUSPEND_SNAPSHOT } from "../vm/saved-state.js";
import { listSnapshots as listVmSnapshots, monitor, offlineSnapshot } from "../vm/snapshots.js";
import { waitForSsh } from "../vm/ssh-ready.js";
import { removeRuntimeFiles, vmStatus } from "../vm/state.js";
import { stopVm } from "../vm/stop.js";
import { suspendVm } from "../vm/suspend.js";
import { removeVmFiles } from "../vm/vm-files.js";
import { lockProject } from "./lock.js";
import { rememberProject } from "./registry.js";
import type { VmHost } from "./vm-host.js";

/** The host as it is: real locks, QEMU, qemu-img, the image pipeline and the broker process. */
export const realVmHost: VmHost = {
  lockProject,
  rememberProject,
  vmStatus,
  removeRuntimeFiles,
  brokerStatus,
  chooseAccelerator,
  ensureStateDirs,
  bootHints,
  resolveBaseImage,
  preflight,
  settleGuestAccess,
  async prepareDisk(qemuImg, vm, location) {
    // A catalog disk is checked again as it is about to back the guest: a cache copied in by hand too.
    if (vm.source.kind === "managed")
      await refuseReferences(
        qemuImg,
        location.path,
        `The root disk of ${vm.source.name}@${vm.source.version}`,
      );
    const base = await inspectBaseImage(qemuImg, location);
    return { base, overlay: await ensureOverlay(qemuImg, vm.overlay, base, vm.name) };
  },
  prepareGuestNetwork,
  startMetadataServer: ({ vmName, paths, command }) =>
    startMetadataServer({ vmName, files: metadataServerFiles(paths), command }),
  stopMetadataServer: (paths) => stopMetadataServer(metadataServerFiles(paths)),
  launchVm,
  waitUntilReady,
  waitForSsh,
  stopVm,
  startBroker,
  stopBroker,
  hostTools: requireHostTools,
  suspendVm,
  async discardSavedState(qemuImg, vm) {
    const snapshots = await listVmSnapshots(qemuImg, vm.overlay, true).catch(() => []);
    if (snapshots.some((s) => s.name === SUSPEND_SNAPSHOT))
      await offlineSnapshot(qemuImg, vm.overlay, "delete", SUSPEND_SNAPSHOT, vm.name);
    await removeSuspendRecord(vm.overlay);
  },
  async listSnapshots(qemuImg, vm) {
    return (await exists(vm.overlay)) ? listVmSnapshots(qemuImg, vm.overlay) : [];
  },
  async changeSnapshot({ action, vm, name, qemuImg, live }) {
    if (live) {
      const command = { save: "savevm", restore: "loadvm", delete: "delvm" }[action];
      return monitor(live.qmpSocket, `${command} ${name}`, vm.name);
    }
    const offline = { save: "create", restore: "apply", delete: "delete" } as const;
    return offlineSnapshot(qemuImg, vm.overlay, offline[action], name, vm.name);
  },
  removeVmFiles,
  async checkGuestSetup(project, vm) {
    await checkMounts(project, vm);
    await checkScripts(project, vm);
  },
  mountShares,
  unmountShares,
  planProvisioning,
  runProvisionStep,
  saveProvisionRecord,
};

function metadataServerFiles(paths: VmPaths): MetadataServerFiles {
  return {
    config: paths.metadataConfig,
    socket: paths.metadataSocket,
    pidFile: paths.metadataPidFile,
    log: paths.metadataLog,
  };
}
