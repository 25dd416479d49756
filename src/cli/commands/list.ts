import { readdir, readFile } from "node:fs/promises";
import { loadProjectFile, synthesizeProject } from "../../config/load.js";
import type { Project } from "../../config/model.js";
import { CastraError } from "../../errors.js";
import { exists } from "../../host/files.js";
import { knownProjects } from "../../project/registry.js";
import { castraQemuOf } from "../../vm/host-ports.js";
import type { VmState } from "../../vm/state.js";
import type { CommandContext } from "../context.js";
import { stateReaderOf } from "../project.js";
import { formatTable } from "../render/table.js";
import type { ListOptions } from "./specs.js";

/** One VM as `castra list --json` prints it. */
export interface ListedVm {
  project: string;
  directory: string;
  vm: string;
  state: VmState | "unreadable";
  ssh: { host: string; port: number } | null;
}

/**
 * `castra list`: every VM of every project this user ran castra in (the per-user registry, plus any castra
 * QEMU running now), with its state and SSH port, like `vagrant global-status`.
 */
export async function runList(opts: ListOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const reader = stateReaderOf(ctx);
  const dirs = new Set(
    (await knownProjects(io.env, (dir) => exists(`${dir}/.castra`))).map((p) => p.rootDir),
  );
  for (const dir of await runningProjectDirs()) dirs.add(dir);
  const listed: ListedVm[] = [];
  for (const dir of dirs) {
    const project = await projectAt(dir);
    if (!project) {
      listed.push({ project: "?", directory: dir, vm: "-", state: "unreadable", ssh: null });
      continue;
    }
    for (const vm of project.vms) {
      const status = await reader.vmStatus(project, vm);
      const live =
        status.state === "running" || status.state === "starting" || status.state === "shutting_down";
      const ssh =
        live && status.record?.ssh ? { host: status.record.ssh.host, port: status.record.ssh.port } : null;
      listed.push({ project: project.name, directory: dir, vm: vm.name, state: status.state, ssh });
    }
  }
  if (opts.json) {
    io.print(JSON.stringify({ vms: listed }, null, 2));
    return 0;
  }
  if (listed.length === 0) {
    io.info("No castra projects on this machine yet: `castra up` in a directory starts one.");
    return 0;
  }
  const rows = listed.map((v) => [
    v.project,
    // Across projects, a path relative to here would only confuse: always the whole path.
    v.directory,
    v.vm,
    v.state,
    v.ssh ? `${v.ssh.host}:${v.ssh.port}` : "-",
  ]);
  for (const line of formatTable(["PROJECT", "DIRECTORY", "VM", "STATE", "SSH"], rows)) io.print(line);
  return 0;
}

/** The project whose directory this is: its castra.toml, or the zero-config project; undefined if unreadable. */
async function projectAt(dir: string): Promise<Project | undefined> {
  const config = `${dir}/castra.toml`;
  if (!(await exists(config))) return synthesizeProject(dir);
  return loadProjectFile(config).catch((err: unknown) => {
    if (err instanceof CastraError) return undefined;
    throw err;
  });
}

/** Directories of projects whose QEMU runs now (started before the registry existed, say). */
async function runningProjectDirs(): Promise<string[]> {
  const dirs: string[] = [];
  for (const pid of (await readdir("/proc").catch(() => [] as string[])).filter((n) => /^\d+$/.test(n))) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!cmdline.includes("guest=castra:")) continue;
    const directory = castraQemuOf(cmdline.split("\0"))?.directory;
    if (directory) dirs.push(directory);
  }
  return dirs;
}
