import { constants } from "node:fs";
import { chmod, copyFile, link, open, rename, rm, stat } from "node:fs/promises";

/** How a file came to hold another file's bytes. */
export type Placement = "reflink" | "hardlink" | "copy";

/**
 * Makes `dest` (which must not exist) hold the bytes of `src` as cheaply as the filesystem allows: a reflink
 * (shared blocks, copied on write), else a hard link when `hardLink` allows one, else a real copy. Each failure
 * falls through to the next way; only the real copy's error is thrown.
 */
export async function placeFile(
  src: string,
  dest: string,
  options: { hardLink: boolean },
): Promise<Placement> {
  try {
    await copyFile(src, dest, constants.COPYFILE_FICLONE_FORCE | constants.COPYFILE_EXCL);
    return "reflink";
  } catch {
    await rm(dest, { force: true }).catch(() => {});
  }
  if (options.hardLink) {
    try {
      await link(src, dest);
      return "hardlink";
    } catch {
      // other filesystem (EXDEV), protected_hardlinks (EPERM), too many links (EMLINK): copy instead
    }
  }
  try {
    await copyFile(src, dest, constants.COPYFILE_EXCL);
  } catch (err) {
    await rm(dest, { force: true }).catch(() => {});
    throw err;
  }
  return "copy";
}

/**
 * Gives `path` an inode of its own when other names share it (a hard link to a download-cache blob), so an
 * in-place change such as a truncation never reaches the other names. The result is writable by its owner.
 */
export async function unshareFile(path: string): Promise<boolean> {
  if ((await stat(path)).nlink <= 1) return false;
  const temp = `${path}.unshared.tmp.partial`;
  await rm(temp, { force: true });
  try {
    await copyFile(path, temp, constants.COPYFILE_FICLONE | constants.COPYFILE_EXCL);
    await chmod(temp, 0o644);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => {});
    throw err;
  }
  return true;
}

/** Flushes a file's bytes to the disk, so a rename that follows never publishes a half-written file. */
export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Flushes a directory entry (a rename) to the disk; best effort, as some filesystems refuse it. */
export async function syncDirectory(path: string): Promise<void> {
  try {
    const handle = await open(path, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {}
}
