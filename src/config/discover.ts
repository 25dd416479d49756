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

/**
 * Finds the castra.toml that applies to `cwd`: `--config` wins, else the nearest one in `cwd` or a parent
 * (like git finds `.git`). Returns null when there is none, so the caller can synthesize a project.
 */
export async function findConfigFile(options: DiscoveryOptions): Promise<string | null> {
  if (options.configPath !== undefined)
    return explicitConfig(resolve(options.cwd, options.configPath), options.configPath);
  let dir = resolve(options.cwd);
  for (;;) {
    const candidate = join(dir, CONFIG_FILE_NAME);
    if ((await kindOf(candidate)) === "file") return candidate;
    const parent = dirname(dir);
    if (options.skipDiscovery || parent === dir) return null;
    dir = parent;
  }
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
