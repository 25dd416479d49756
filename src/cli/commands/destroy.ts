import { displayPath } from "../../config/load.js";
import { destroyProject } from "../../project/destroy.js";
import { confirmDeletion } from "../confirm.js";
import type { CommandContext } from "../context.js";
import { resolveProject, vmHostOf } from "../project.js";
import { renderProjectEvents } from "../render/project-events.js";
import { selectVms } from "../targets.js";
import { DEFAULT_DOWN_TIMEOUT_S } from "./down.js";
import type { DestroyOptions } from "./specs.js";

/**
 * `castra destroy [VM…] [--yes]`: stops the VMs and deletes their disks (overlays, snapshots, saved states);
 * images, the download cache, logs and castra.toml stay. Asks first.
 */
export async function runDestroy(opts: DestroyOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const project = await resolveProject(ctx);
  const targets = selectVms(project, opts.vms, "destroy");
  for (const vm of targets)
    io.info(`${vm.name}: overlay ${displayPath(vm.overlay, io.cwd)} and everything saved in it`);
  const names = targets.map((vm) => vm.name).join(", ");
  const confirmed = await confirmDeletion(io, {
    yes: opts.yes,
    question: `Destroy ${names}? Their disks, snapshots and saved states are deleted for good. [y/N] `,
    command: `castra destroy${opts.vms?.length ? ` ${opts.vms.join(" ")}` : ""}`,
    what: "VMs listed above",
  });
  if (!confirmed) {
    io.info("Nothing destroyed.");
    return 0;
  }
  const renderer = renderProjectEvents(io);
  try {
    await destroyProject(project, await vmHostOf(ctx), {
      targets,
      env: io.env,
      timeoutMs: DEFAULT_DOWN_TIMEOUT_S * 1000,
      signal: ctx.signal,
      onEvent: renderer.onEvent,
    });
  } finally {
    renderer.done();
  }
  io.print(
    `The next \`castra up\` boots ${names} from ${targets.length === 1 ? "its" : "their"} base image.`,
  );
  return 0;
}
