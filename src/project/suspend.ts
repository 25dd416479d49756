import type { Project, VmConfig } from "../config/model.js";
import { vmPaths } from "../vm/paths.js";
import type { ProjectEvent } from "./events.js";
import { underProjectLock } from "./lock.js";
import { withSharesReleased } from "./shares.js";
import type { VmHost } from "./vm-host.js";

export interface SuspendOptions {
  targets?: readonly VmConfig[];
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  onEvent: (event: ProjectEvent) => void;
}

/**
 * `castra suspend`: under the project lock, saves each running VM's memory and devices into its overlay and
 * ends its QEMU, one VM at a time (each save is disk-bound). A VM that does not run is skipped with a notice.
 * Returns the VMs suspended.
 */
export async function suspendProject(
  project: Project,
  host: VmHost,
  options: SuspendOptions,
): Promise<string[]> {
  const { onEvent } = options;
  return underProjectLock(project, host, "castra suspend", options, async () => {
    const suspended: string[] = [];
    for (const vm of options.targets ?? project.vms) {
      const status = await host.vmStatus(project, vm);
      const { record } = status;
      if (!record || (status.state !== "running" && status.state !== "starting")) {
        onEvent({ type: "skipped", vm: vm.name, state: status.state, action: "suspend" });
        continue;
      }
      const { qemuImg } = await host.hostTools(options.env);
      const begun = Date.now();
      onEvent({ type: "suspending", vm: vm.name, pid: record.pid, memoryBytes: record.memoryBytes });
      const paths = vmPaths(project, vm);
      const saved = await withSharesReleased(
        project,
        host,
        { vm, record },
        options,
        () => host.suspendVm({ vm, record, paths, qemuImg, signal: options.signal }),
        false,
      );
      // Its QEMU has ended; `up` starts a new server when it resumes the VM.
      await host.stopMetadataServer(paths);
      onEvent({
        type: "vm-suspended",
        vm: vm.name,
        elapsedMs: Date.now() - begun,
        stateBytes: saved.stateBytes,
      });
      suspended.push(vm.name);
    }
    return suspended;
  });
}
