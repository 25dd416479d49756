import {
  closeSync,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { OPEN_PRIVATE } from "../host/open-flags.js";
import { isOwnedByUser, isOwnedPrivateDir, shortRuntimeDir } from "../host/runtime-dir.js";

/**
 * Where V8's code cache for the CLI bundle is kept, and how it is read and written. A cache is code the next run
 * executes, so it lives only where no one else can write: the user's private runtime directory, opened without
 * following links. Everything here is synchronous because the cache is written from an `exit` listener.
 */

/** The value of CASTRA_CODE_CACHE that turns the cache off. */
export const CODE_CACHE_OFF = "off";
/** Caches of other builds or Node versions older than this are removed when a new cache is written. */
const STALE_MS = 7 * 24 * 3600 * 1000;
/** The build ends the bundle with this line, naming the hash of everything before it. */
const TRAILER = /\n\/\/# castra-bundle ([0-9a-f]{16})\n$/;

/** The bundle's own hash from its last line, or undefined for a bundle without one (no cache then). */
export function bundleIdOf(source: string): string | undefined {
  return TRAILER.exec(source.slice(-64))?.[1];
}

/**
 * `<private runtime dir>/code-cache`, created when missing inside a runtime directory that is already the user's
 * own (`up` makes that one, and under `sudo -E` root must not make it for the user); undefined otherwise, or when
 * CASTRA_CODE_CACHE=off.
 */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.CASTRA_CODE_CACHE?.trim().toLowerCase() === CODE_CACHE_OFF) return undefined;
  const runtime = shortRuntimeDir(env);
  if (!isPrivateDir(runtime)) return undefined;
  const dir = join(runtime, "code-cache");
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") return undefined;
  }
  return isPrivateDir(dir) ? dir : undefined;
}

function isPrivateDir(dir: string): boolean {
  try {
    return isOwnedPrivateDir(lstatSync(dir));
  } catch {
    return false;
  }
}

/**
 * One file per bundle and Node: V8 checks its own version and flags but compares sources by length only, so the
 * bundle's hash is what tells two builds apart.
 */
export function codeCacheFile(dir: string, bundleId: string): string {
  return join(dir, `cli-${bundleId}-node${process.versions.node}-${process.arch}.v8`);
}

/** The cache's bytes, or undefined when it is missing, a link, or not the user's own file. */
export function readCodeCache(file: string): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(file, OPEN_PRIVATE.read);
  } catch {
    return undefined;
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile() || !isOwnedByUser(info)) return undefined;
    return readFileSync(fd);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Saves a cache as a new file put in place whole, so a concurrent run reads all of one or none. An existing cache
 * is kept (the first run's stays; a later run of the same build has nothing better) unless `replace`: V8 refused
 * it. Never throws: a cache only ever saves time.
 */
export function writeCodeCache(file: string, data: Uint8Array, replace: boolean): void {
  const temp = `${file}.${process.pid}.tmp`;
  try {
    const fd = openSync(temp, OPEN_PRIVATE.create, 0o600);
    try {
      writeFileSync(fd, data);
    } finally {
      closeSync(fd);
    }
    if (replace) renameSync(temp, file);
    else linkSync(temp, file);
    removeStale(file);
  } catch {
    // Already there (another run was first), or no room: either way the run goes on without saving.
  } finally {
    removeQuietly(temp);
  }
}

function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true, recursive: true });
  } catch {
    // What cannot be removed now is a stale file for a later run to remove.
  }
}

/** Other builds' caches (a castra updated or rebuilt) stop being used: remove those not written for a week. */
function removeStale(kept: string): void {
  const dir = dirname(kept);
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (path === kept || !name.startsWith("cli-")) continue;
    if (Date.now() - statSync(path).mtimeMs > STALE_MS) removeQuietly(path);
  }
}
