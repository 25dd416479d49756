import { UnavailableError } from "../../errors.js";
import { sshConfigBlock } from "../../ssh/client.js";
import type { CommandContext } from "../context.js";
import { resolveProject } from "../project.js";
import { runningSshTarget } from "../ssh-target.js";
import { oneVm } from "../targets.js";
import type { SshConfigOptions } from "./specs.js";

/**
 * `castra ssh-config [VM]`: an OpenSSH `Host` block per running VM (the named one, else every VM with SSH),
 * so `scp`, `rsync` and editors reach guests as `castra-<project>-<vm>`.
 */
export async function runSshConfig(opts: SshConfigOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const project = await resolveProject(ctx);
  if (opts.vm !== undefined || project.vms.length === 1) {
    const { target } = await runningSshTarget(project, oneVm(project, opts.vm, "ssh-config", "operand"));
    io.out.write(sshConfigBlock(target));
    return 0;
  }
  const blocks: string[] = [];
  for (const vm of project.vms.filter((v) => v.ssh !== false)) {
    const found = await runningSshTarget(project, vm).catch((err: unknown) => {
      if (err instanceof UnavailableError) return undefined;
      throw err;
    });
    if (found) blocks.push(sshConfigBlock(found.target));
    else io.info(`${vm.name} is not running: no Host block for it`);
  }
  if (blocks.length === 0) {
    throw new UnavailableError("No VM of this project runs with SSH", {
      detail: "A Host block needs the port castra forwards to the guest's port 22, chosen at `castra up`.",
      hint: "start the VMs with `castra up`, then run `castra ssh-config` again",
    });
  }
  io.out.write(blocks.join("\n"));
  return 0;
}
