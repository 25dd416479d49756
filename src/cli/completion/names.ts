import { loadOrDefaultProject } from "../../config/load.js";
import type { Project } from "../../config/model.js";
import { exists } from "../../host/files.js";
import { findOnPath, QEMU_IMG } from "../../host/tools.js";
import type { NameSource } from "./candidates.js";

export interface ProjectLookup {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** `-c/--config` and `--skip-discovery` as typed on the line being completed. */
  configPath?: string;
  skipDiscovery: boolean;
  /** `--vm NAME` on the line: whose snapshots to offer. */
  vm?: string;
}

/**
 * The names a placeholder stands for, read at completion time: the project's VMs, the catalog's images, a
 * VM's snapshots. What does not load (a broken castra.toml, no qemu-img) offers nothing rather than an
 * error in the prompt.
 */
export function namesFor(lookup: ProjectLookup): NameSource {
  const project = () => loadOrDefaultProject(lookup);
  const sources: Record<string, () => Promise<string[]>> = {
    vm: async () => (await project()).vms.map((vm) => vm.name),
    image: async () => {
      const { imageName, loadCatalog } = await import("../../images/catalog.js");
      return (await loadCatalog(lookup.env)).entries.map(imageName);
    },
    snapshot: async () => snapshotNames(await project(), lookup),
  };
  return async (placeholder) => {
    const source = sources[placeholder === "vms" ? "vm" : placeholder];
    return source ? source().catch(() => []) : [];
  };
}

/** The snapshots of the VM named by `--vm`, else of the project's only VM, as `qemu-img info` lists them. */
async function snapshotNames(project: Project, lookup: ProjectLookup): Promise<string[]> {
  const vm = lookup.vm ? project.vms.find((v) => v.name === lookup.vm) : project.vms[0];
  if (!vm || (!lookup.vm && project.vms.length > 1) || !(await exists(vm.overlay))) return [];
  const qemuImg = await findOnPath(QEMU_IMG, lookup.env.PATH);
  if (!qemuImg) return [];
  const { listSnapshots } = await import("../../vm/snapshots.js");
  return (await listSnapshots(qemuImg, vm.overlay)).map((s) => s.name);
}

/** `-c PATH`, `--config=PATH`, `--skip-discovery` and `--vm NAME` among the words being completed. */
export function projectFlagsIn(words: string[]): Pick<ProjectLookup, "configPath" | "skipDiscovery" | "vm"> {
  const flagValue = (short: string | undefined, long: string): string | undefined => {
    let found: string | undefined;
    for (const [i, word] of words.entries()) {
      if (word === "--") break;
      if (word === long || word === short) found = words[i + 1];
      else if (word.startsWith(`${long}=`)) found = word.slice(long.length + 1);
    }
    return found;
  };
  return {
    configPath: flagValue("-c", "--config"),
    skipDiscovery: words.includes("--skip-discovery"),
    vm: flagValue(undefined, "--vm"),
  };
}
