import { lstat, statfs } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Project } from "../config/model.js";
import { formatBytes } from "../host/bytes.js";
import { existingAncestor } from "../host/files.js";
import { isOwnedPrivateDir, shortRuntimeDir } from "../host/runtime-dir.js";
import { UNIX_SOCKET_MAX_BYTES, vmPaths } from "../vm/paths.js";
import { MIN_FREE_DISK_BYTES } from "../vm/preflight.js";
import { type DoctorCheck, fail, ok, warn } from "./check.js";

async function freeBytes(path: string): Promise<{ dir: string; free?: number }> {
  const dir = await existingAncestor(path);
  const free = await statfs(dir).then(
    (s) => s.bavail * s.bsize,
    () => undefined,
  );
  return { dir, free };
}

/** `up` refuses to start with less than this free for overlays, so less is a failure. */
export async function checkProjectDisk(project: Project): Promise<DoctorCheck> {
  const { dir, free } = await freeBytes(project.stateDir);
  if (free === undefined)
    return warn("project-disk", `cannot read the free space of ${dir}`, `check it with \`df -h ${dir}\``);
  const summary = `${formatBytes(free)} free in ${dir}`;
  if (free >= MIN_FREE_DISK_BYTES) return ok("project-disk", summary);
  return fail(
    "project-disk",
    `only ${summary}: castra up wants ${formatBytes(MIN_FREE_DISK_BYTES)} for overlays`,
    `free some space (df -h ${dir}) or move the project to a larger disk`,
  );
}

/**
 * The download cache only speeds things up (castra warns and goes on when it is unusable), so its space is
 * a warning; a cache directory someone else owns or can write is a failure: fix it once and it stays fixed.
 */
export async function checkCache(root: string | undefined): Promise<DoctorCheck[]> {
  if (root === undefined)
    return [ok("cache-dir", "off (CASTRA_CACHE_DIR=off): every project downloads its own images")];
  const { dir, free } = await freeBytes(root);
  const space =
    free === undefined || free >= MIN_FREE_DISK_BYTES
      ? ok(
          "cache-disk",
          free === undefined ? `free space of ${dir} unknown` : `${formatBytes(free)} free in ${dir}`,
        )
      : warn(
          "cache-disk",
          `only ${formatBytes(free)} free in ${dir} for downloaded images`,
          `free some space, or point CASTRA_CACHE_DIR at a larger disk`,
        );
  return [space, await checkCacheOwner(root)];
}

async function checkCacheOwner(root: string): Promise<DoctorCheck> {
  const info = await lstat(root).catch(() => undefined);
  if (!info) return ok("cache-dir", `${root} (made at the first download)`);
  const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
  const uid = process.getuid?.();
  if (!info.isDirectory()) {
    return fail(
      "cache-dir",
      `${root} is not a directory`,
      `remove it (rm ${root}) or set CASTRA_CACHE_DIR to a directory of yours`,
    );
  }
  if (uid !== undefined && info.uid !== uid) {
    return fail(
      "cache-dir",
      `${root} belongs to uid ${info.uid}, not you (uid ${uid}): castra cannot share downloads through it`,
      `take it back (sudo chown -R $(id -u):$(id -g) ${root}) or set CASTRA_CACHE_DIR to a directory of yours`,
    );
  }
  if ((info.mode & 0o022) !== 0) {
    return fail("cache-dir", `${root} is writable by others (mode ${mode})`, `chmod go-w ${root}`);
  }
  return ok("cache-dir", `${root}, yours, mode ${mode}`);
}

/** QMP sockets live in `.castra/run/` unless that path is too long for a unix socket; then in `shortDir`. */
export async function checkSockets(project: Project, env: NodeJS.ProcessEnv): Promise<DoctorCheck> {
  const sockets = project.vms.map((vm) => vmPaths(project, vm, env).qmpSocket);
  const runDir = join(project.stateDir, "run");
  const longest = Math.max(...sockets.map((p) => Buffer.byteLength(p)));
  const limit = UNIX_SOCKET_MAX_BYTES;
  if (sockets.every((p) => dirname(p) === runDir)) {
    return ok("sockets", `QMP sockets fit in .castra/run/ (longest path ${longest} of ${limit} bytes)`);
  }
  const shortDir = shortRuntimeDir(env);
  const tooLong = `the project path is too long for QMP sockets in .castra/run/ (over ${limit} bytes)`;
  const info = await lstat(shortDir).catch(() => undefined);
  if (info && !isOwnedPrivateDir(info)) {
    return fail(
      "sockets",
      `${tooLong}, and ${shortDir}, where castra puts them instead, is not a private directory of yours`,
      `remove it (rm -r ${shortDir}) or set XDG_RUNTIME_DIR to a private directory`,
    );
  }
  return ok("sockets", `${tooLong}: castra puts them in ${shortDir}`);
}
