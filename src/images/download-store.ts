import { constants, type Stats } from "node:fs";
import { chmod, lstat, mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import * as z from "zod/mini";
import { type Placement, placeFile, syncDirectory, syncFile } from "./file-placement.js";
import { sha256File } from "./manifest.js";
import { redactUrl } from "./redact-url.js";
import "../zod-messages.js";

/**
 * The per-user download cache (docs/design.md, "Project state"): verified downloads named by their sha256,
 * `downloads/sha256/<hash>` (read-only) beside `<hash>.json` (where it came from, when it was last used).
 * It only ever speeds things up, so every caller treats its errors as warnings.
 */

/** The value of CASTRA_CACHE_DIR that turns the download cache off. */
export const STORE_OFF = "off";

/** `$CASTRA_CACHE_DIR`, else `$XDG_CACHE_HOME/castra`, else the platform's per-user cache; undefined when off. */
export function downloadStoreRoot(
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): string | undefined {
  const explicit = env.CASTRA_CACHE_DIR?.trim();
  if (explicit?.toLowerCase() === STORE_OFF) return undefined;
  if (explicit) return resolve(explicit);
  // The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, "castra");
  const home = env.HOME || homedir();
  return platform === "darwin" ? join(home, "Library", "Caches", "castra") : join(home, ".cache", "castra");
}

export interface BlobRecord {
  format: 1;
  sha256: string;
  size: number;
  /** The catalog URL the bytes were published for, with any password redacted (`images list --cache` shows it). */
  url: string;
  fetched_at: string;
  last_used_at: string;
}

/** One `downloads/sha256/<hash>` file as found on disk. */
export interface StoredBlob {
  sha256: string;
  path: string;
  size: number;
  /** Hard links to the blob: above 1, project files share its blocks and removing it frees nothing. */
  links: number;
  /** Owned by the user and writable by no one else: only such a blob may be hard-linked into a project. */
  linkable: boolean;
  modified: Date;
  record?: BlobRecord;
}

const SHA256 = /^[0-9a-f]{64}$/;
const recordSchema = z.object({
  format: z.literal(1),
  sha256: z.string().check(z.regex(SHA256)),
  size: z.int().check(z.nonnegative()),
  url: z.string(),
  fetched_at: z.string(),
  last_used_at: z.string(),
});

/** Who else may change a file or directory: undefined when only the user may, else why not. */
export function foreignAccess(path: string, info: Stats): string | undefined {
  const me = process.getuid?.();
  if (me !== undefined && info.uid !== me)
    return `${path} is owned by uid ${info.uid}, not by you (uid ${me})`;
  const writers = [info.mode & 0o020 ? "its group" : "", info.mode & 0o002 ? "others" : ""].filter(Boolean);
  if (writers.length === 0) return undefined;
  const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
  return `${path} is writable by ${writers.join(" and ")} (mode ${mode})`;
}

/** Creates a file that must not exist yet, never through a link planted at its name. */
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export class DownloadStore {
  readonly blobsDir: string;

  constructor(readonly root: string) {
    this.blobsDir = join(root, "downloads", "sha256");
  }

  /** The store CASTRA_CACHE_DIR and friends point at, or undefined when it is off. */
  static fromEnv(env: NodeJS.ProcessEnv): DownloadStore | undefined {
    const root = downloadStoreRoot(env);
    return root === undefined ? undefined : new DownloadStore(root);
  }

  blobPath(sha256: string): string {
    return join(this.blobsDir, sha256);
  }

  recordPath(sha256: string): string {
    return `${this.blobPath(sha256)}.json`;
  }

  /** Held around "look in the store, download, publish", so two projects download a blob once. */
  lockPath(sha256: string): string {
    return `${this.blobPath(sha256)}.lock`;
  }

  /** Creates the store's directories, private to the user (0700). */
  async create(): Promise<void> {
    await mkdir(dirname(this.root), { recursive: true });
    // One level at a time: a recursive mkdir reports ENOENT, not EROFS, on a read-only filesystem.
    for (const dir of [this.root, join(this.root, "downloads"), this.blobsDir]) {
      await mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "EEXIST") throw err;
      });
    }
  }

  /**
   * Why the store cannot be trusted, or undefined when it can: it and its subdirectories (those that exist)
   * must be directories the user owns and no one else may write, or another user could swap blobs under us.
   */
  async trustProblem(): Promise<string | undefined> {
    const dirs = [this.root, join(this.root, "downloads"), this.blobsDir];
    for (const [i, dir] of dirs.entries()) {
      // The root may be a link the user made (to another disk); below it, links are never followed.
      const info = await (i === 0 ? stat(dir) : lstat(dir)).catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return undefined;
        throw err;
      });
      if (!info) return undefined;
      if (!info.isDirectory()) return `${dir} is not a directory`;
      const problem = foreignAccess(dir, info);
      if (problem) return problem;
    }
    return undefined;
  }

  /** The blob named `sha256`, when it is a regular file; its size and content are the caller's to check. */
  async find(sha256: string): Promise<StoredBlob | undefined> {
    const path = this.blobPath(sha256);
    const st = await lstat(path).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    const record = await this.readRecord(sha256);
    const linkable = foreignAccess(path, st) === undefined;
    return { sha256, path, size: st.size, links: st.nlink, linkable, modified: st.mtime, record };
  }

  /** Every blob in the store, sorted by name; an absent store holds none. */
  async list(): Promise<StoredBlob[]> {
    const names = await this.names();
    const blobs = await Promise.all(names.filter((n) => SHA256.test(n)).map((n) => this.find(n)));
    return blobs.filter((b): b is StoredBlob => b !== undefined);
  }

  /** Temporary files a crash left mid-publish, and records whose blob is gone. */
  async leftovers(): Promise<{ path: string; size: number }[]> {
    const names = await this.names();
    const blobs = new Set(names.filter((n) => SHA256.test(n)));
    const stray = names.filter(
      (n) => n.endsWith(".tmp") || (n.endsWith(".json") && !blobs.has(n.slice(0, -".json".length))),
    );
    return Promise.all(
      stray.map(async (name) => {
        const path = join(this.blobsDir, name);
        const st = await lstat(path).catch(() => undefined);
        return { path, size: st?.isFile() ? st.size : 0 };
      }),
    );
  }

  /**
   * Makes `dest` (in a project) hold the blob: reflink, else hard link, else copy. A reflink or copy is left
   * writable for the transforms; a hard link is the blob itself, which `unshareFile` protects from them.
   * A blob someone else owns or may write is never linked: its owner could change the project's file later.
   */
  async placeInto(blob: StoredBlob, dest: string): Promise<Placement> {
    await rm(dest, { force: true });
    const placement = await placeFile(blob.path, dest, { hardLink: blob.linkable });
    if (placement !== "hardlink") await chmod(dest, 0o644);
    return placement;
  }

  /**
   * Adds a verified download to the store atomically: placed on a temporary name, made read-only, flushed,
   * then renamed, so the final name never holds a partial or unverified file. A copy (another filesystem)
   * is hashed again before the rename; a link or reflink shares the verified bytes.
   */
  async publish(source: string, sha256: string, size: number, url: string): Promise<Placement> {
    await this.create();
    const final = this.blobPath(sha256);
    const temp = `${final}.tmp`;
    await rm(temp, { force: true });
    let placement: Placement;
    try {
      placement = await placeFile(source, temp, { hardLink: true });
      await chmod(temp, 0o444);
      if (placement === "copy" && (await sha256File(temp)) !== sha256) {
        throw new Error("the copy in the download cache does not match the verified download");
      }
      await syncFile(temp);
      await rename(temp, final);
    } catch (err) {
      await rm(temp, { force: true }).catch(() => {});
      throw err;
    }
    await syncDirectory(this.blobsDir);
    const now = new Date().toISOString();
    await this.writeRecord({ format: 1, sha256, size, url, fetched_at: now, last_used_at: now });
    return placement;
  }

  /** Records a use, for `castra images prune --cache --older-than`. */
  async markUsed(blob: StoredBlob, url: string): Promise<void> {
    const now = new Date().toISOString();
    const base = blob.record ?? {
      format: 1 as const,
      sha256: blob.sha256,
      size: blob.size,
      url,
      fetched_at: blob.modified.toISOString(),
    };
    await this.writeRecord({ ...base, last_used_at: now });
  }

  /**
   * Removes a blob and its record; returns the bytes this frees and whether project files still hard-link
   * the blob (its bytes then stay on disk until they go too).
   */
  async remove(sha256: string): Promise<{ freed: number; shared: boolean }> {
    const st = await lstat(this.blobPath(sha256)).catch(() => undefined);
    const blob = await unlinkCounting(this.blobPath(sha256));
    const record = await unlinkCounting(this.recordPath(sha256));
    return { freed: blob + record, shared: st !== undefined && st.nlink > 1 };
  }

  /** Removes one of `leftovers()`; returns the bytes this frees. */
  removeLeftover(path: string): Promise<number> {
    return unlinkCounting(path);
  }

  private async names(): Promise<string[]> {
    try {
      return (await readdir(this.blobsDir)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
  }

  private async readRecord(sha256: string): Promise<BlobRecord | undefined> {
    try {
      const parsed = recordSchema.safeParse(JSON.parse(await readFile(this.recordPath(sha256), "utf8")));
      if (!parsed.success || parsed.data.sha256 !== sha256) return undefined;
      return { ...parsed.data, url: redactUrl(parsed.data.url) };
    } catch {
      return undefined;
    }
  }

  /** Written to a new temporary file and renamed, so a reader never sees half a record. */
  private async writeRecord(record: BlobRecord): Promise<void> {
    const path = this.recordPath(record.sha256);
    const redacted = { ...record, url: redactUrl(record.url) };
    const temp = `${path}.tmp`;
    // A leftover (or a planted link) is removed, never written through; a race to recreate it fails the open.
    await rm(temp, { force: true });
    const handle = await open(temp, CREATE_NEW, 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(redacted, null, 2)}\n`);
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  }
}

/** Unlinks a file; the bytes freed are its size unless another name still holds the inode. */
async function unlinkCounting(path: string): Promise<number> {
  const st = await lstat(path).catch(() => undefined);
  await rm(path, { force: true });
  return st?.isFile() && st.nlink <= 1 ? st.size : 0;
}
