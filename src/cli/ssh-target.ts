import type { Project, VmConfig } from "../config/model.js";
import { InputMissingError, UnavailableError } from "../errors.js";
import { exists } from "../host/files.js";
import type { SshTarget } from "../ssh/client.js";
import { projectSshTarget } from "../ssh/target.js";
import { type VmStatus, vmStatus } from "../vm/state.js";

/** A running VM's login: where its SSH forward listens and with which key, user and known_hosts. */
export interface RunningSsh {
  target: SshTarget;
  status: VmStatus;
}

/** Fails (69) unless `vm` runs with an SSH forward, (66) unless the project key exists. */
export async function runningSshTarget(project: Project, vm: VmConfig): Promise<RunningSsh> {
  const status = await vmStatus(project, vm);
  if (status.state !== "running" && status.state !== "starting") {
    const what = status.state === "error" ? "stopped unexpectedly" : status.state.replace("_", " ");
    throw new UnavailableError(`vm ${vm.name} is not running (${what})`, {
      hint:
        status.state === "shutting_down"
          ? "wait for `castra down` to finish, then run `castra up`"
          : "start it with `castra up`",
    });
  }
  const endpoint = status.record?.ssh;
  if (!endpoint) {
    throw new UnavailableError(`vm ${vm.name} has no SSH forward`, {
      detail:
        vm.ssh === false
          ? "castra.toml sets ssh = false for this VM."
          : "It was started without one (by an older castra, or before ssh was enabled).",
      hint:
        vm.ssh === false
          ? `remove ssh = false from vm ${vm.name} in castra.toml, then \`castra down\` and \`castra up\``
          : "run `castra down`, then `castra up`",
    });
  }
  const target = projectSshTarget(project, vm, endpoint);
  if (!(await exists(target.keyPath))) {
    throw new InputMissingError(`The project's SSH key ${target.keyPath} is missing`, {
      detail: `vm ${vm.name} was given the key castra created at \`castra up\`; without it nobody can log in.`,
      hint: "run `castra down`, then `castra up`: it creates a new key and hands it to the guest",
    });
  }
  return { target, status };
}
