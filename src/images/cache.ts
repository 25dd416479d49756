import { readdir, rm, rmdir, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fsError } from "../errors.js";
import { acquireLock, type Lock } from "../host/lock.js";
import { imageLockPath } from "./ensure-image.js";
import { type Manifest, readManifest, sha256File } from "./manifest.js";

/** One `.castra/images/<id>/<version>/` directory as found on disk. */
export interface CachedImage {
  id: string;
  version: string;
  /** "alpine-minimal@v1" */
  name: string;
  dir: string;
  /** Absent when the directory holds no readable manifest (a download in progress or a failed one). */
  manifest?: Manifest;
  /** Every file in the directory except the lock, with its size. */
  files: { name: string; size: number; modified: Date }[];
  totalBytes: number;
}

export function imagesRoot(stateDir: string): string {
  return join(stateDir, "images");
}

async function subdirectories(path: string): Promise<string[]> {
  try {
    const entries = await readdir(path, { withFileTypes: true });
    return entries
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw fsError(err, "read the image cache", path);
  }
}

/** What the project's image cache holds, sorted by name. */
export async function listCachedImages(stateDir: string): Promise<CachedImage[]> {
  const root = imagesRoot(stateDir);
  const images: CachedImage[] = [];
  for (const id of await subdirectories(root)) {
    for (const version of await subdirectories(join(root, id))) {
      const dir = join(root, id, version);
      const read = await readManifest(dir);
      const names = (await readdir(dir)).filter((n) => n !== ".lock").sort();
      const files = await Promise.all(
        names.map(async (name) => {
          const st = await stat(join(dir, name));
          return { name, size: st.size, modified: st.mtime };
        }),
      );
      const totalBytes = files.reduce((sum, f) => sum + f.size, 0);
      const manifest = read.kind === "ok" ? read.manifest : undefined;
      images.push({ id, version, name: `${id}@${version}`, dir, manifest, files, totalBytes });
    }
  }
  return images;
}

export interface VerifyFinding {
  file: string;
  ok: boolean;
  /** What is wrong, for a file that is not ok. */
  problem?: string;
}

/** Re-hashes every final file of an image against its manifest: the full check a cache hit skips. */
export async function verifyCachedImage(
  image: CachedImage & { manifest: Manifest },
): Promise<VerifyFinding[]> {
  const findings: VerifyFinding[] = [];
  for (const artifact of image.manifest.artifacts) {
    const path = join(image.dir, artifact.final_name);
    const size = await stat(path).then(
      (s) => s.size,
      () => undefined,
    );
    if (size === undefined) {
      findings.push({ file: artifact.final_name, ok: false, problem: "missing" });
      continue;
    }
    const actual = await sha256File(path);
    const ok = actual === artifact.final_sha256 && size === artifact.final_size;
    const problem = ok
      ? undefined
      : `expected sha256 ${artifact.final_sha256} (${artifact.final_size} bytes), found ${actual} (${size} bytes)`;
    findings.push({ file: artifact.final_name, ok, problem });
  }
  return findings;
}

/** Takes the image's lock, as ensureImage does, so nothing is checked or removed while it is being built. */
export function lockCachedImage(
  image: CachedImage,
  options: { signal?: AbortSignal; timeoutMs?: number },
): Promise<Lock> {
  return acquireLock(imageLockPath(image.dir), { purpose: `image ${image.name}`, ...options });
}

/** Deletes an image directory (its `<id>/` parent too once empty); returns the bytes freed. */
export async function removeCachedImage(image: CachedImage): Promise<number> {
  try {
    await rm(image.dir, { recursive: true, force: true });
  } catch (err) {
    throw fsError(err, `remove ${image.name}`, image.dir);
  }
  await rmdir(dirname(image.dir)).catch(() => {}); // fails while other versions remain: fine
  return image.totalBytes;
}
