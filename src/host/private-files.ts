import { chmod, type FileHandle, lstat, mkdir, open, readdir } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { CannotCreateError, fsError, linkRefused } from "../errors.js";
import { OPEN_PRIVATE, type OpenPrivateMode } from "./open-flags.js";

export { OPEN_PRIVATE, type OpenPrivateMode };

/**
 * Files in a private directory (a project's `.castra/`): opened without following a link at their own name
 * (a planted link could point anywhere the user can write), created 0600 under 0700 directories.
 */

/** Opens `path` as `how` says; a link there is exit 73 naming it, other failures map through `fsError`. */
export async function openPrivate(path: string, how: OpenPrivateMode, action: string): Promise<FileHandle> {
  try {
    return await open(path, OPEN_PRIVATE[how], 0o600);
  } catch (err) {
    throw fsError(err, action, path);
  }
}

/** Throws `linkRefused` when `path` is a symbolic link; a missing path is fine. */
export async function refuseLink(path: string): Promise<void> {
  const info = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw fsError(err, "inspect", path);
  });
  if (info?.isSymbolicLink()) throw linkRefused(path);
}

/** Throws `linkRefused` for the first symbolic link among the entries of `dir` (a missing `dir` has none). */
export async function refuseLinksIn(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const link = entries.find((e) => e.isSymbolicLink());
  if (link) throw linkRefused(join(dir, link.name));
}

/**
 * Creates `dir` and every missing level below `root` (itself included) with mode 0700, and checks that each
 * level is a real directory: a link anywhere on the way is refused, never followed.
 */
export async function ensurePrivateDir(root: string, dir = root): Promise<void> {
  const rel = relative(root, dir);
  const levels = [root];
  if (rel !== "") for (const part of rel.split(sep)) levels.push(join(levels.at(-1) as string, part));
  for (const level of levels) {
    await mkdir(level, { mode: 0o700, recursive: level === root }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw fsError(err, "create the directory", level);
    });
    const info = await lstat(level).catch((err) => {
      throw fsError(err, "create the directory", level);
    });
    if (info.isSymbolicLink()) throw linkRefused(level);
    if (!info.isDirectory())
      throw new CannotCreateError(`Cannot create the directory ${level}: a file is in the way`, {
        hint: `move ${level} away, then run the command again`,
      });
  }
}

/** One entry whose mode was narrowed to owner-only. */
export interface NarrowedMode {
  /** Relative to the root that was narrowed ("" for the root itself). */
  path: string;
  from: number;
  to: number;
}

/**
 * Narrows every directory below `root` (and `root`) to 0700 and every file that others could read or
 * anyone but its owner write to `mode & 0700`. Read-only files (images: 0444) keep their mode, since their
 * 0700 directory keeps others out and they may be hard links into the user's download cache. Links are
 * neither followed nor changed.
 */
export async function narrowModes(root: string): Promise<NarrowedMode[]> {
  const narrowed: NarrowedMode[] = [];
  const visit = async (rel: string): Promise<void> => {
    const path = join(root, rel);
    const info = await lstat(path).catch(() => undefined);
    if (!info || info.isSymbolicLink()) return;
    const mode = info.mode & 0o777;
    const readOnly = (mode & 0o222) === 0;
    const wanted = info.isDirectory() ? 0o700 : readOnly ? mode : mode & 0o700;
    if (wanted !== mode) {
      await chmod(path, wanted).catch((err) => {
        throw fsError(err, "restrict the permissions of", path);
      });
      narrowed.push({ path: rel, from: mode, to: wanted });
    }
    if (!info.isDirectory()) return;
    const names = await readdir(path).catch(() => [] as string[]);
    for (const name of names.sort()) await visit(rel ? join(rel, name) : name);
  };
  await visit("");
  return narrowed;
}
