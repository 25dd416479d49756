import { rm } from "node:fs/promises";
import { CastraError, LockTimeoutError } from "../errors.js";
import { acquireLock, type Lock } from "../host/lock.js";
import { describeKind } from "./catalog.js";
import type { Artifact, ArtifactKind } from "./catalog-schema.js";
import type { DownloadStore } from "./download-store.js";
import type { ImageEvent } from "./events.js";
import type { Placement } from "./file-placement.js";
import { sha256File } from "./manifest.js";
import { oneAtATime } from "./one-at-a-time.js";

/** Which image and artifact the session's events are about. */
export interface BlobUse {
  image: string;
  artifact: ArtifactKind;
}

export interface StoreSessionOptions {
  emit: (event: ImageEvent) => void;
  signal?: AbortSignal;
  lockTimeoutMs: number;
}

/**
 * The download cache as one `ensureImage` call uses it. Every failure of the store is a warning, said once:
 * after it, the session only reads what is already there and adds nothing. A store the user cannot trust
 * (another user owns it or may write to it) is not read either.
 */
export class StoreSession {
  private writable = true;
  private warned = false;
  private trusted: Promise<boolean> | undefined;

  constructor(
    readonly store: DownloadStore,
    private readonly options: StoreSessionOptions,
  ) {}

  /**
   * Runs `work` holding the blob's lock, so two castras fetching the same bytes download them once; when the
   * lock cannot be created (a read-only store), without it, and `work` must then only read.
   */
  async withBlob<T>(artifact: Artifact, use: BlobUse, work: (locked: boolean) => Promise<T>): Promise<T> {
    return oneAtATime(this.store.lockPath(artifact.sha256), async () => {
      this.trusted ??= this.open(use);
      const lock = (await this.trusted) && this.writable ? await this.lock(artifact, use) : undefined;
      try {
        return await work(lock !== undefined);
      } finally {
        await lock?.release().catch(() => {});
      }
    });
  }

  /**
   * Places the stored blob at `dest` and checks the sha256 of what was placed (a blob damaged in the store is
   * never used, and is removed when we hold its lock). True when `dest` now holds the verified download.
   */
  async take(artifact: Artifact, dest: string, use: BlobUse, locked: boolean): Promise<boolean> {
    this.trusted ??= this.open(use);
    if (!(await this.trusted)) return false;
    const blob = await this.store.find(artifact.sha256).catch(() => undefined);
    if (!blob) return false;
    if (blob.size !== artifact.size) {
      await this.damaged(artifact, use, locked, `${blob.size} bytes instead of ${artifact.size}`);
      return false;
    }
    let placement: Placement;
    let actual: string;
    try {
      placement = await this.store.placeInto(blob, dest);
      // Hashing what was placed, not the blob, leaves no gap between the check and the use.
      actual = await sha256File(dest);
    } catch (err) {
      await rm(dest, { force: true }).catch(() => {});
      this.unusable(use, err);
      return false;
    }
    if (actual !== artifact.sha256) {
      await rm(dest, { force: true });
      await this.damaged(artifact, use, locked, `its sha256 is ${actual}`);
      return false;
    }
    this.options.emit({ type: "store-hit", ...use, path: blob.path, bytes: blob.size, placement });
    if (locked) await this.store.markUsed(blob, artifact.url).catch((err) => this.unusable(use, err));
    return true;
  }

  /** Publishes a verified download; a store that cannot take it is a warning, the project keeps its copy. */
  async add(source: string, artifact: Artifact, use: BlobUse): Promise<void> {
    if (!this.writable) return;
    try {
      const placement = await this.store.publish(source, artifact.sha256, artifact.size, artifact.url);
      this.options.emit({ type: "store-add", ...use, path: this.store.blobPath(artifact.sha256), placement });
    } catch (err) {
      this.unusable(use, err);
    }
  }

  /** Creates the store where it is missing, then checks that only the user may change it; false: leave it be. */
  private async open(use: BlobUse): Promise<boolean> {
    // A store that cannot be created (a read-only disk) may still hold blobs to read.
    await this.store.create().catch((err) => this.unusable(use, err));
    const problem = await this.store.trustProblem().catch((err: Error) => err.message);
    if (problem === undefined) return true;
    this.unusable(use, new Error(`${problem}; only a cache that you own and no one else may write is used`));
    return false;
  }

  private async lock(artifact: Artifact, use: BlobUse): Promise<Lock | undefined> {
    try {
      return await acquireLock(this.store.lockPath(artifact.sha256), {
        purpose: `download of the ${describeKind(artifact.kind)} of ${use.image}`,
        timeoutMs: this.options.lockTimeoutMs,
        onWait: (holder) => this.options.emit({ type: "store-wait", ...use, pid: holder.pid }),
        signal: this.options.signal,
      });
    } catch (err) {
      if (err instanceof LockTimeoutError || this.options.signal?.aborted) throw err;
      this.unusable(use, err);
      return undefined;
    }
  }

  private async damaged(artifact: Artifact, use: BlobUse, locked: boolean, problem: string): Promise<void> {
    const path = this.store.blobPath(artifact.sha256);
    this.options.emit({ type: "store-damaged", ...use, path, problem });
    // Removed now so a crash before the re-download cannot leave it to the next project; the publish replaces it.
    if (locked) await this.store.remove(artifact.sha256).catch((err) => this.unusable(use, err));
  }

  private unusable(use: BlobUse, err: unknown): void {
    this.writable = false;
    if (this.warned) return;
    this.warned = true;
    this.options.emit({
      type: "store-unusable",
      image: use.image,
      store: this.store.root,
      reason: reasonOf(err),
    });
  }
}

/** The operating system's words ("EROFS: read-only file system, mkdir '…'") rather than castra's headline. */
function reasonOf(err: unknown): string {
  const inner = err instanceof CastraError && err.cause instanceof Error ? err.cause : err;
  return inner instanceof Error ? inner.message : String(inner);
}
