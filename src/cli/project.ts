import { resolve } from "node:path";
import { brokerStatus } from "../broker/state.js";
import { displayPath, loadOrDefaultProject } from "../config/load.js";
import type { Project } from "../config/model.js";
import type { VmHost } from "../project/vm-host.js";
import { vmStatus } from "../vm/state.js";
import type { CommandContext } from "./context.js";
import type { IO } from "./io.js";

/** The project a command works on (castra.toml or the synthesized default), with its warnings shown once. */
export async function resolveProject(ctx: CommandContext): Promise<Project> {
  const project = await loadOrDefaultProject({
    cwd: ctx.io.cwd,
    configPath: ctx.global.config,
    skipDiscovery: ctx.global.skipDiscovery,
  });
  reportConfigWarnings(project, ctx.io);
  return project;
}

/**
 * Prints config warnings as one summary line for unknown keys plus one line per notice:
 * "2 unknown keys in castra.toml: vms[0].cpu (did you mean `cpus`?), broker.foo".
 */
export function reportConfigWarnings(project: Project, io: IO): void {
  if (project.warnings.length === 0 || !project.configPath) return;
  const file = displayPath(project.configPath, io.cwd);
  const unknown = project.warnings.filter((w) => w.kind === "unknown_key");
  if (unknown.length > 0) {
    const items = unknown.map((w) => {
      const suggestion = /\(did you mean .+\)/.exec(w.message)?.[0];
      return suggestion ? `${w.path} ${suggestion}` : w.path;
    });
    const noun = unknown.length === 1 ? "unknown key" : "unknown keys";
    io.warn(`${unknown.length} ${noun} in ${file} (ignored): ${items.join(", ")}`);
  }
  for (const w of project.warnings) {
    if (w.kind !== "unknown_key") io.warn(`${file}: ${w.path}: ${w.message}`);
  }
}

/** Reads VM and broker state: the context's host in tests, else the state files (no launcher is loaded). */
export function stateReaderOf(ctx: CommandContext): Pick<VmHost, "vmStatus" | "brokerStatus"> {
  return ctx.vmHost ?? { vmStatus, brokerStatus };
}

/** The context's host for `up` and `down`, else the real one (loaded only by the commands that start or stop VMs). */
export async function vmHostOf(ctx: CommandContext): Promise<VmHost> {
  return ctx.vmHost ?? (await import("../project/real-vm-host.js")).realVmHost;
}

/** How to run castra itself again: the broker process and each VM's metadata server. */
export function castraItself(): { execPath: string; execArgv: string[]; entry: string } {
  return { execPath: process.execPath, execArgv: process.execArgv, entry: resolve(process.argv[1] ?? "") };
}
