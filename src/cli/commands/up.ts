import { displayPath } from "../../config/load.js";
import type { Project } from "../../config/model.js";
import type { LiveVm } from "../../project/events.js";
import { upProject } from "../../project/up.js";
import { brokerAddressShown } from "../../vm/guest-addresses.js";
import type { CommandContext } from "../context.js";
import type { IO } from "../io.js";
import { castraItself, resolveProject, vmHostOf } from "../project.js";
import { renderProjectEvents } from "../render/project-events.js";
import { selectVms } from "../targets.js";
import type { UpOptions } from "./specs.js";

export const DEFAULT_UP_TIMEOUT_S = 300;

/** `castra up`: starts the project's VMs (see `upProject`), renders its progress, then says where to look. */
export async function runUp(opts: UpOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const project = await resolveProject(ctx);
  const targets = selectVms(project, opts.vms, "up");
  const renderer = renderProjectEvents(io);
  let live: LiveVm[];
  try {
    live = await upProject(project, await vmHostOf(ctx), {
      targets,
      discardSuspended: Boolean(opts.discardSuspended),
      wait: opts.wait,
      timeoutMs: (opts.timeout ?? DEFAULT_UP_TIMEOUT_S) * 1000,
      accel: opts.accel,
      force: Boolean(opts.force),
      offline: Boolean(opts.offline),
      env: io.env,
      signal: ctx.signal,
      self: castraItself(),
      onEvent: renderer.onEvent,
    });
  } finally {
    renderer.done();
  }
  printEpilogue(io, project, live, opts.wait);
  return 0;
}

/** Where to look and how to stop: the last lines of every successful `up`. */
function printEpilogue(io: IO, project: Project, live: LiveVm[], waitedForReady: boolean): void {
  if (live.length === 0) {
    io.print("No VMs to start.");
    return;
  }
  if (!waitedForReady)
    io.print(`Started without waiting (--no-wait): \`castra status\` shows when the VMs are ready.`);
  for (const { vm, record } of live) {
    io.print(`${vm.name}: serial console log in ${displayPath(record.serialLog, io.cwd)}`);
    const ssh = record.ssh;
    if (ssh?.keyServed) {
      const command = project.vms.length > 1 ? `castra ssh ${vm.name}` : "castra ssh";
      const verb = waitedForReady ? "logs in" : "will log in, once its SSH server is up,";
      io.print(`${vm.name}: \`${command}\` ${verb} as ${ssh.user} (SSH on ${ssh.host}:${ssh.port})`);
    } else if (ssh) {
      // castra gave this guest no key (it serves it no metadata): SSH is only forwarded.
      io.print(
        `${vm.name}: its port 22 is forwarded to ${ssh.host}:${ssh.port} (log in with the image's own credentials)`,
      );
    }
  }
  if (project.broker) {
    io.print(
      `Host broker: guests reach it at ${brokerAddressShown(project.broker.port)} (no host port: a unix socket in .castra/run/)`,
    );
  }
  io.print("Follow the logs with `castra logs --follow`; stop everything with `castra down`.");
}
