import { formatBytes } from "../../host/bytes.js";
import { changeVmSnapshot, listVmSnapshots } from "../../project/snapshot.js";
import type { CommandContext } from "../context.js";
import { resolveProject, vmHostOf } from "../project.js";
import { renderProjectEvents } from "../render/project-events.js";
import { formatTable } from "../render/table.js";
import { formatDate } from "../render/text.js";
import { oneVm } from "../targets.js";
import type { SnapshotListOptions, SnapshotOptions } from "./specs.js";

type Action = "save" | "restore" | "delete";

const DONE: Record<Action, (vm: string, name: string, live: boolean) => string> = {
  save: (vm, name, live) =>
    `Saved snapshot ${name} of ${vm} (${live ? "disk and memory" : "disk only: the VM was stopped"})`,
  restore: (vm, name, live) =>
    live ? `${vm} is back at snapshot ${name}` : `${vm}'s disk is rewound to snapshot ${name}`,
  delete: (vm, name) => `Deleted snapshot ${name} of ${vm}`,
};

function snapshotCommand(action: Action) {
  return async (opts: SnapshotOptions, ctx: CommandContext): Promise<number> => {
    const project = await resolveProject(ctx);
    const vm = oneVm(project, opts.vm, `snapshot ${action}`);
    const renderer = renderProjectEvents(ctx.io);
    try {
      const outcome = await changeVmSnapshot(project, await vmHostOf(ctx), vm, action, opts.name, {
        env: ctx.io.env,
        signal: ctx.signal,
        onEvent: renderer.onEvent,
      });
      const size = outcome.snapshot?.stateBytes
        ? `, ${formatBytes(outcome.snapshot.stateBytes)} of memory`
        : "";
      ctx.io.success(`${DONE[action](vm.name, opts.name, outcome.live)}${action === "save" ? size : ""}`);
    } finally {
      renderer.done();
    }
    return 0;
  };
}

export const runSnapshotSave = snapshotCommand("save");
export const runSnapshotRestore = snapshotCommand("restore");
export const runSnapshotDelete = snapshotCommand("delete");

/** `castra snapshot list [--vm VM]`: name, date, whether it holds memory, and the memory's size. */
export async function runSnapshotList(opts: SnapshotListOptions, ctx: CommandContext): Promise<number> {
  const project = await resolveProject(ctx);
  const vm = oneVm(project, opts.vm, "snapshot list");
  const snapshots = await listVmSnapshots(await vmHostOf(ctx), vm, ctx.io.env);
  if (snapshots.length === 0) {
    ctx.io.info(`${vm.name} has no snapshots. \`castra snapshot save --vm ${vm.name} NAME\` takes one.`);
    return 0;
  }
  const rows = snapshots.map((s) => [
    s.name,
    formatDate(s.createdAt),
    s.stateBytes > 0 ? "yes" : "no",
    s.stateBytes > 0 ? formatBytes(s.stateBytes) : "-",
  ]);
  for (const line of formatTable(["NAME", "DATE", "MEMORY", "SIZE"], rows)) ctx.io.print(line);
  return 0;
}
