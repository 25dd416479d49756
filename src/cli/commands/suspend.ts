import { suspendProject } from "../../project/suspend.js";
import type { CommandContext } from "../context.js";
import { resolveProject, vmHostOf } from "../project.js";
import { renderProjectEvents } from "../render/project-events.js";
import { selectVms } from "../targets.js";
import type { SuspendOptions } from "./specs.js";

/** `castra suspend [VM…]`: saves running VMs' whole state and stops them; `castra up` resumes them. */
export async function runSuspend(opts: SuspendOptions, ctx: CommandContext): Promise<number> {
  const project = await resolveProject(ctx);
  const targets = selectVms(project, opts.vms, "suspend");
  const renderer = renderProjectEvents(ctx.io);
  try {
    const suspended = await suspendProject(project, await vmHostOf(ctx), {
      targets,
      env: ctx.io.env,
      signal: ctx.signal,
      onEvent: renderer.onEvent,
    });
    if (suspended.length > 0)
      ctx.io.print(`Resume with \`castra up${opts.vms?.length ? ` ${suspended.join(" ")}` : ""}\`.`);
  } finally {
    renderer.done();
  }
  return 0;
}
