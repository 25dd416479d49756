import { downProject } from "../../project/down.js";
import type { CommandContext } from "../context.js";
import { resolveProject, vmHostOf } from "../project.js";
import { renderProjectEvents } from "../render/project-events.js";
import { selectVms } from "../targets.js";
import type { DownOptions } from "./specs.js";

export const DEFAULT_DOWN_TIMEOUT_S = 60;

/** `castra down`: ACPI power-down for every running VM, then signals if needed; stops the broker. */
export async function runDown(opts: DownOptions, ctx: CommandContext): Promise<number> {
  const project = await resolveProject(ctx);
  const targets = selectVms(project, opts.vms, "down");
  const renderer = renderProjectEvents(ctx.io);
  try {
    const result = await downProject(project, await vmHostOf(ctx), {
      targets,
      env: ctx.io.env,
      timeoutMs: (opts.timeout ?? DEFAULT_DOWN_TIMEOUT_S) * 1000,
      force: Boolean(opts.force),
      signal: ctx.signal,
      onEvent: renderer.onEvent,
    });
    const nothing = result.stopped.length === 0 && result.discarded.length === 0 && !result.brokerStopped;
    if (nothing) ctx.io.print("Nothing is running.");
  } finally {
    renderer.done();
  }
  return 0;
}
