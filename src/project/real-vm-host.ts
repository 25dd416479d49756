import { startBroker, stopBroker } from "../broker/process.js";
import { brokerStatus } from "../broker/state.js";
import { chooseAccelerator } from "../vm/accel.js";
import { inspectBaseImage, resolveBaseImage } from "../vm/base-image.js";
import { prepareGuestNetwork, settleGuestAccess } from "../vm/guest-access.js";
import { launchVm } from "../vm/launch.js";
import { ensureOverlay } from "../vm/overlay.js";
import { ensureStateDirs, vmPaths } from "../vm/paths.js";
import { preflight } from "../vm/preflight.js";
import { waitUntilReady } from "../vm/readiness.js";
import { removeRuntimeFiles, vmStatus } from "../vm/state.js";
import { stopVm } from "../vm/stop.js";
import { lockProject } from "./lock.js";
import type { VmHost } from "./vm-host.js";

/** The host as it is: real locks, QEMU, qemu-img, the image pipeline and the broker process. */
export const realVmHost: VmHost = {
  lockProject,
  vmStatus,
  removeRuntimeFiles,
  brokerStatus,
  chooseAccelerator,
  ensureStateDirs: (project) =>
    ensureStateDirs(
      project,
      project.vms.map((vm) => vmPaths(project, vm).qmpSocket),
    ),
  resolveBaseImage,
  preflight,
  settleGuestAccess,
  async prepareDisk(qemuImg, vm, location) {
    const base = await inspectBaseImage(qemuImg, location);
    return { base, overlay: await ensureOverlay(qemuImg, vm.overlay, base, vm.name) };
  },
  prepareGuestNetwork,
  launchVm,
  waitUntilReady,
  stopVm,
  startBroker,
  stopBroker,
};
