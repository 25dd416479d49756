import { provisionProject } from "../../project/provision.js";
import type { CommandContext } from "../context.js";
import { resolveProject, vmHostOf } from "../project.js";
import { renderProjectEvents } from "../render/project-events.js";
import { selectVms } from "../targets.js";
import type { ProvisionOptions } from "./specs.js";

/** `castra provision [VM…]`: mounts missing shares and runs every provisioning step again on running VMs. */
export async function runProvision(opts: ProvisionOptions, ctx: CommandContext): Promise<number> {
  const project = await resolveProject(ctx);
  const targets = selectVms(project, opts.vms, "provision");
  const renderer = renderProjectEvents(ctx.io);
  try {
    await provisionProject(project, await vmHostOf(ctx), {
      targets,
      named: (opts.vms ?? []).length > 0,
      env: ctx.io.env,
      signal: ctx.signal,
      onEvent: renderer.onEvent,
    });
  } finally {
    renderer.done();
  }
  return 0;
}
