import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Script } from "node:vm";
import { isOwnedPrivateDir, shortRuntimeDir } from "../host/runtime-dir.js";

/**
 * V8's code cache for the CLI bundle: the bytecode of what a run compiled, so that the next run neither parses
 * nor compiles it again (Node 20 has no compile cache for a script it did not load itself). A cache is code the
 * next run executes, so it is kept only where no one else can write: the user's private runtime directory,
 * opened without following links. Every failure here only costs speed; none is ever reported.
 */

const READ = constants.O_RDONLY | constants.O_NOFOLLOW;
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** `<private runtime dir>/code-cache`, created when missing; undefined unless it is ours alone. */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const runtime = shortRuntimeDir(env);
  const dir = join(runtime, "code-cache");
  for (const level of [runtime, dir]) {
    try {
      mkdirSync(level, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") return undefined;
    }
    try {
      if (!isOwnedPrivateDir(lstatSync(level))) return undefined;
    } catch {
      return undefined;
    }
  }
  return dir;
}

/**
 * One file per bundle and Node: V8 checks its own version and flags but compares sources by length only, so the
 * bundle's content hash (`bundleId`, from the build) is what tells two builds apart.
 */
export function codeCacheFile(dir: string, bundleId: string): string {
  return join(dir, `cli-${bundleId}-node${process.versions.node}-${process.arch}.v8`);
}

/** The cache's bytes, or undefined when it is missing, a link, or not the user's own file. */
export function readCodeCache(file: string): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(file, READ);
  } catch {
    return undefined;
  }
  try {
    const info = fstatSync(fd);
    const uid = process.getuid?.();
    if (!info.isFile() || (uid !== undefined && info.uid !== uid)) return undefined;
    return readFileSync(fd);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Writes the cache whole or not at all: a new file renamed into place, so a concurrent run reads either. */
export function writeCodeCache(file: string, data: Uint8Array): void {
  const temp = `${file}.${process.pid}.tmp`;
  try {
    const fd = openSync(temp, CREATE, 0o600);
    try {
      writeFileSync(fd, data);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  } catch {
    rmSync(temp, { force: true });
  }
}

/**
 * Runs the CommonJS bundle at `bundle` as `require` would, compiled from `cacheFile` when V8 accepts it; when
 * there was none or V8 refused it, this run's code is saved there as it exits.
 */
export function runBundle(bundle: string, cacheFile: string | undefined): void {
  const source = readFileSync(bundle, "utf8");
  const cachedData = cacheFile === undefined ? undefined : readCodeCache(cacheFile);
  // The wrapper shares the bundle's first line, so stack traces keep the bundle's line numbers.
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new Script(wrapped, { filename: bundle, cachedData });
  if (cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected)) {
    // Made at exit, the cache holds every function this run compiled, not only the bundle's top level.
    process.once("exit", () => writeCodeCache(cacheFile, script.createCachedData()));
  }
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, dirname(bundle));
}
