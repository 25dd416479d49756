import { mkdir, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";

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
