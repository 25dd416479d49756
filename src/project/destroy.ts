import type { Project, VmConfig } from "../config/model.js";
import { type DownOptions, stopTargets } from "./down.js";
import type { VmHost } from "./vm-host.js";

/**
 * `castra destroy`: under one hold of the project lock (so no `up` can start a VM half-way), stops each VM as
 * `down` does (a suspended one loses its saved state), then deletes what belongs to it alone, so the next
 * `up` boots it from its base image. Returns the VMs destroyed.
 */
export async function destroyProject(
  project: Project,
  host: VmHost,
  options: DownOptions & { targets: readonly VmConfig[] },
): Promise<string[]> {
  await host.ensureStateDirs(project);
  const lock = await host.lockProject(project, "castra destroy", {
    signal: options.signal,
    onWait: (holder) => options.onEvent({ type: "lock-wait", holder }),
  });
  try {
    await stopTargets(project, host, options);
    for (const vm of options.targets) {
      const removed = await host.removeVmFiles(project, vm);
      options.onEvent({ type: "vm-destroyed", vm: vm.name, removed });
    }
    return options.targets.map((vm) => vm.name);
  } finally {
    await lock.release();
  }
}
