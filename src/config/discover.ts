import { stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fsError, InputMissingError } from "../errors.js";

export const CONFIG_FILE_NAME = "castra.toml";

export interface DiscoveryOptions {
  cwd: string;
  /** `--config PATH`: this file (or `PATH/castra.toml` for a directory), no discovery. */
  configPath?: string;
  /** `--skip-discovery`: look in `cwd` only, not in its parents. */
  skipDiscovery?: boolean;
}

/** Where the project of a directory is: a castra.toml, or the root of a zero-config project. */
export type ProjectLocation = { kind: "config"; path: string } | { kind: "default"; rootDir: string };

/** The state directory whose presence marks a zero-config project's root. */
const STATE_DIR_NAME = ".castra";

/**
 * Finds the project that applies to `cwd`, like git finds `.git`: `--config` wins; else the nearest directory,
 * `cwd` or a parent, holding a castra.toml or a `.castra/` (a zero-config project that ran there); else a new
 * zero-config project in `cwd`. At one level castra.toml wins over `.castra/`, which sits beside it.
 */
export async function findProject(options: DiscoveryOptions): Promise<ProjectLocation> {
  if (options.configPath !== undefined)
    return {
      kind: "config",
      path: await explicitConfig(resolve(options.cwd, options.configPath), options.configPath),
    };
  let dir = resolve(options.cwd);
  for (;;) {
    const candidate = join(dir, CONFIG_FILE_NAME);
    if ((await kindOf(candidate)) === "file") return { kind: "config", path: candidate };
    if ((await kindOf(join(dir, STATE_DIR_NAME))) === "dir") return { kind: "default", rootDir: dir };
    const parent = dirname(dir);
    if (options.skipDiscovery || parent === dir) return { kind: "default", rootDir: resolve(options.cwd) };
    dir = parent;
  }
}

/** The castra.toml that applies to `cwd`, or null when its project has none (see `findProject`). */
export async function findConfigFile(options: DiscoveryOptions): Promise<string | null> {
  const found = await findProject(options);
  return found.kind === "config" ? found.path : null;
}

async function explicitConfig(path: string, asTyped: string): Promise<string> {
  const kind = await kindOf(path);
  if (kind === "file") return path;
  if (kind === "dir" && (await kindOf(join(path, CONFIG_FILE_NAME))) === "file")
    return join(path, CONFIG_FILE_NAME);
  const missing = kind === "dir" ? join(path, CONFIG_FILE_NAME) : path;
  throw new InputMissingError(`Config file not found: ${missing}`, {
    detail: `--config ${asTyped} names a castra.toml that does not exist.`,
    hint: `check the path, or create one with \`castra init -o ${asTyped}\``,
  });
}

async function kindOf(path: string): Promise<"file" | "dir" | null> {
  try {
    const info = await stat(path);
    return info.isDirectory() ? "dir" : "file";
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // A parent directory we may not read simply holds no castra.toml for us.
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EACCES") return null;
    throw fsError(err, "look for castra.toml", path);
  }
}
