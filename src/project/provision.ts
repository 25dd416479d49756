import type { Project, VmConfig } from "../config/model.js";
import { UnavailableError } from "../errors.js";
import type { ProjectEvent } from "./events.js";
import { setUpGuest } from "./guest-setup.js";
import { underProjectLock } from "./lock.js";
import type { VmHost } from "./vm-host.js";

export interface ProvisionOptions {
  targets: readonly VmConfig[];
  /** The VMs were named on the command line: one that does not run is an error, not a notice. */
  named: boolean;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  onEvent: (event: ProjectEvent) => void;
}

/**
 * `castra provision [VM…]`: on each running VM, mounts whatever share is not mounted and runs every
 * provisioning step again, `once` steps included, one VM after the other. Returns the VMs provisioned.
 */
export async function provisionProject(
  project: Project,
  host: VmHost,
  options: ProvisionOptions,
): Promise<string[]> {
  const { onEvent } = options;
  return underProjectLock(project, host, "castra provision", options, async () => {
    const done: string[] = [];
    for (const vm of options.targets) {
      const status = await host.vmStatus(project, vm);
      const { record } = status;
      if (!record || (status.state !== "running" && status.state !== "starting")) {
        if (options.named) throw notRunning(vm.name, status.state);
        onEvent({ type: "skipped", vm: vm.name, state: status.state, action: "provision" });
        continue;
      }
      await host.checkGuestSetup(project, vm);
      await setUpGuest(project, host, { vm, record }, "all", options);
      done.push(vm.name);
    }
    if (done.length === 0) throw notRunning(undefined, "stopped");
    return done;
  });
}

function notRunning(name: string | undefined, state: string): UnavailableError {
  const what =
    name === undefined
      ? "No VM of this project is running"
      : `vm ${name} is not running (${state.replace("_", " ")})`;
  return new UnavailableError(what, {
    detail: "Provisioning runs in a running guest, over SSH.",
    hint: `start it with \`castra up${name ? ` ${name}` : ""}\`: that mounts its shares and runs its pending steps`,
  });
}
