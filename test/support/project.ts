import { join } from "node:path";
import type { Project } from "../../src/config/model.js";

/** The project a castra.toml in `rootDir` would give; tests pass the VMs and whatever else differs. */
export function projectAt(rootDir: string, fields: Partial<Project> = {}): Project {
  return {
    name: "demo",
    rootDir,
    configPath: join(rootDir, "castra.toml"),
    synthesized: false,
    stateDir: join(rootDir, ".castra"),
    version: "0.1.0",
    vms: [],
    warnings: [],
    ...fields,
  };
}
