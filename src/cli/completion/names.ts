import { loadOrDefaultProject } from "../../config/load.js";
import type { NameSource } from "./candidates.js";

export interface ProjectLookup {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** `-c/--config` and `--skip-discovery` as typed on the line being completed. */
  configPath?: string;
  skipDiscovery: boolean;
}

/**
 * The names a placeholder stands for, read at completion time: the project's VMs, the catalog's images.
 * A project that does not load (a broken castra.toml) offers nothing rather than an error in the prompt.
 */
export function namesFor(lookup: ProjectLookup): NameSource {
  return async (placeholder) => {
    try {
      if (placeholder === "vm" || placeholder === "vms") {
        const project = await loadOrDefaultProject(lookup);
        return project.vms.map((vm) => vm.name);
      }
      if (placeholder === "image") {
        const { imageName, loadCatalog } = await import("../../images/catalog.js");
        return (await loadCatalog(lookup.env)).entries.map(imageName);
      }
    } catch {}
    return [];
  };
}

/** `-c PATH`, `--config=PATH` and `--skip-discovery` among the words being completed. */
export function projectFlagsIn(words: string[]): Pick<ProjectLookup, "configPath" | "skipDiscovery"> {
  let configPath: string | undefined;
  for (const [i, word] of words.entries()) {
    if (word === "--") break;
    if (word === "-c" || word === "--config") configPath = words[i + 1];
    else if (word.startsWith("--config=")) configPath = word.slice("--config=".length);
  }
  return { configPath, skipDiscovery: words.includes("--skip-discovery") };
}
