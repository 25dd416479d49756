import { access, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { fsError } from "../errors.js";
import { refuseLink } from "./private-files.js";

/**
 * `mkdir -p` that reports the real reason it failed. Node's recursive mkdir turns EROFS (a read-only mount)
 * into ENOENT, which would read as "does not exist"; creating the missing levels one by one surfaces the
 * actual error (EROFS, EACCES, ENOSPC) for `fsError` to map to the right exit code.
 */
export async function ensureDir(path: string, mode?: number): Promise<void> {
  try {
    await mkdir(path, { recursive: true, mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    await makeEachLevel(resolve(path), mode);
  }
}

async function makeEachLevel(path: string, mode?: number): Promise<void> {
  const missing: string[] = [];
  for (let dir = path; !(await isPresent(dir)); dir = dirname(dir)) {
    missing.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of missing) {
    await mkdir(dir, { mode }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
  }
}

async function isPresent(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Whether anything exists at `path` (a dangling link or an unreadable parent counts as nothing). */
export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** `path` itself if it exists, else its nearest existing parent: where a directory would be created. */
export async function existingAncestor(path: string): Promise<string> {
  let current = path;
  while (!(await exists(current)) && dirname(current) !== current) current = dirname(current);
  return current;
}

/**
 * Written atomically (temp file + rename) so a reader never sees half a record; mode 0600. The temporary file
 * is created exclusively and a link at `path` is refused (exit 73): neither is ever followed.
 */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await refuseLink(path);
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await rm(tmp, { force: true });
    await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600, flag: "wx" });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw fsError(err, `write ${basename(path)}`, path);
  }
}

/** A JSON file's value, or undefined when it is missing, unreadable or torn. */
export async function readJsonFile<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}
