import { stopBroker } from "../../broker/process.js";
import { brokerStatus } from "../../broker/state.js";
import { exists } from "../../host/files.js";
import { projectPaths } from "../../vm/paths.js";
import { lockProject } from "../../vm/project-lock.js";
import { projectStatus, removeRuntimeFiles, type VmStatus } from "../../vm/state.js";
import { type StopEvent, type StoppedBy, stopVm } from "../../vm/stop.js";
import type { CommandContext } from "../context.js";
import type { IO } from "../io.js";
import { resolveProject } from "../project.js";
import type { DownOptions } from "./specs.js";

export const DEFAULT_DOWN_TIMEOUT_S = 60;

/** `castra down`: ACPI power-down for every running VM, then signals if needed; stops the broker. */
export async function runDown(opts: DownOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const project = await resolveProject(ctx);
  const paths = projectPaths(project);
  if (!(await exists(paths.runDir))) {
    io.print("Nothing is running.");
    return 0;
  }
  const lock = await lockProject(project, "castra down", {
    signal: ctx.signal,
    onWait: (holder) =>
      io.info(
        `Waiting for another castra (pid ${holder.pid}, ${holder.purpose}) to finish with this project…`,
      ),
  });
  try {
    const statuses = await projectStatus(project);
    const timeoutMs = (opts.timeout ?? DEFAULT_DOWN_TIMEOUT_S) * 1000;
    const live = statuses.filter(
      (s) => s.record && ["running", "starting", "shutting_down"].includes(s.state),
    );
    for (const s of statuses) if (!live.includes(s)) await cleanUpStale(io, s);
    await Promise.all(live.map((s) => stopOne(io, s, timeoutMs)));
    const broker = await brokerStatus(project.stateDir);
    const brokerStopped = broker.record ? await stopBroker(project.stateDir, broker.record) : false;
    if (brokerStopped) io.success("Host broker stopped");
    if (live.length === 0 && !brokerStopped) io.print("Nothing is running.");
    return 0;
  } finally {
    await lock.release();
  }
}

async function stopOne(io: IO, status: VmStatus, timeoutMs: number): Promise<void> {
  const { vm, paths } = status;
  const record = status.record;
  if (!record) return;
  const begun = Date.now();
  io.info(`Stopping ${vm.name} (pid ${record.pid}): ACPI power-down, waiting up to ${timeoutMs / 1000} s…`);
  const by = await stopVm(record, paths, { timeoutMs, onEvent: (event) => reportStep(io, vm.name, event) });
  io.success(stoppedLine(vm.name, by, Date.now() - begun));
}

function reportStep(io: IO, name: string, event: StopEvent): void {
  switch (event.kind) {
    case "powerdown-sent":
      return;
    case "powerdown-failed":
      io.warn(`${name}: QMP did not take the power-down request (${event.reason}); sending SIGTERM`);
      return;
    case "powerdown-timeout":
      io.warn(`${name}: the guest did not power off within ${event.waitedMs / 1000} s; sending SIGTERM`);
      return;
    case "signal":
      if (event.signal === "SIGKILL")
        io.warn(`${name}: QEMU is still running after SIGTERM; sending SIGKILL`);
      return;
  }
}

function stoppedLine(name: string, by: StoppedBy, ms: number): string {
  const after = `after ${(ms / 1000).toFixed(1)} s`;
  switch (by) {
    case "acpi":
      return `${name} powered off (ACPI) ${after}`;
    case "sigterm":
      return `${name} stopped by SIGTERM ${after}`;
    case "sigkill":
      return `${name} killed by SIGKILL ${after}`;
    case "exited":
      return `${name} stopped ${after}`;
  }
}

/** A VM that is not running but left runtime files: an unexpected exit, or a pid now used by another program. */
async function cleanUpStale(io: IO, status: VmStatus): Promise<void> {
  const { vm, record, paths } = status;
  if (!record) return;
  await removeRuntimeFiles(paths, record);
  if (status.state === "error") {
    io.info(
      `${vm.name} had already stopped unexpectedly (QEMU pid ${record.pid} is gone): removed its runtime files`,
    );
  } else {
    io.info(
      `${vm.name} was not running (pid ${record.pid} is another program now): removed its stale pid file`,
    );
  }
}
