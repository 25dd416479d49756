import { readdir, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import type { Project } from "../config/model.js";
import { ensureDir, readJsonFile, writeJsonAtomic } from "../host/files.js";
import { shortHash } from "../host/short-hash.js";

/** One project that ran VMs on this machine, as `castra list` finds it again. */
export interface KnownProject {
  rootDir: string;
  name: string;
  /** Its castra.toml, or null for a zero-config project. */
  configPath: string | null;
  lastUpAt: string;
}

/** `$XDG_STATE_HOME/castra/projects`, else `~/.local/state/castra/projects`: one small file per project. */
export function registryDir(env: NodeJS.ProcessEnv): string {
  const state = env.XDG_STATE_HOME && isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : undefined;
  return join(state ?? join(env.HOME || homedir(), ".local", "state"), "castra", "projects");
}

/** Notes that `project` ran VMs here; a file per project, so two `up`s at once never lose each other. */
export async function rememberProject(project: Project, env: NodeJS.ProcessEnv): Promise<void> {
  const dir = registryDir(env);
  const entry: KnownProject = {
    rootDir: project.rootDir,
    name: project.name,
    configPath: project.configPath,
    lastUpAt: new Date().toISOString(),
  };
  // Only a convenience for `castra list`: a registry that cannot be written never stops `up`.
  await ensureDir(dir, 0o700)
    .then(() => writeJsonAtomic(join(dir, `${shortHash(project.rootDir)}.json`), entry))
    .catch(() => {});
}

/** Every project remembered, most recently started first; entries whose directory is gone are dropped. */
export async function knownProjects(
  env: NodeJS.ProcessEnv,
  stillThere: (rootDir: string) => Promise<boolean>,
): Promise<KnownProject[]> {
  const dir = registryDir(env);
  const names = await readdir(dir).catch(() => [] as string[]);
  const found: KnownProject[] = [];
  for (const name of names.filter((n) => n.endsWith(".json"))) {
    const entry = await readJsonFile<KnownProject>(join(dir, name));
    if (!entry || typeof entry.rootDir !== "string") continue;
    if (await stillThere(entry.rootDir)) found.push(entry);
    else await rm(join(dir, name), { force: true });
  }
  return found.sort((a, b) => b.lastUpAt.localeCompare(a.lastUpAt));
}
