import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, open, stat, truncate } from "node:fs/promises";
import { fsError } from "../errors.js";

/** Writes reach the disk in batches this large: fewer syscalls while the socket keeps filling. */
const BATCH_BYTES = 4 * 1024 * 1024;

/**
 * A `.partial` download that is hashed as it grows: bytes already on disk are hashed once when it is
 * opened, new bytes as they are appended, so the finished file never needs a second pass.
 */
export class PartialFile {
  private hash: Hash = createHash("sha256");
  private batch: Buffer[] = [];
  private batchBytes = 0;
  /** Bytes hashed so far: on disk plus the batch not yet written. */
  bytes = 0;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  /** Opens (or creates) `path`; a file larger than `maxBytes` cannot be a prefix of the download and restarts. */
  static async open(path: string, maxBytes: number): Promise<PartialFile> {
    let existing = 0;
    try {
      existing = (await stat(path)).size;
      if (existing > maxBytes) {
        await truncate(path, 0);
        existing = 0;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        throw fsError(err, "read the partial download", path);
    }
    let handle: FileHandle;
    try {
      handle = await open(path, "a");
    } catch (err) {
      throw fsError(err, "create the download file", path);
    }
    const file = new PartialFile(path, handle);
    if (existing > 0) await file.hashExisting(existing);
    return file;
  }

  private async hashExisting(length: number): Promise<void> {
    try {
      for await (const chunk of createReadStream(this.path, {
        start: 0,
        end: length - 1,
        highWaterMark: 1 << 20,
      })) {
        this.hash.update(chunk as Buffer);
      }
    } catch (err) {
      await this.handle.close();
      throw fsError(err, "read the partial download", this.path);
    }
    this.bytes = length;
  }

  /** Adds a chunk; returns a promise only when a batch is being written, so callers await rarely. */
  append(chunk: Buffer): Promise<void> | undefined {
    this.hash.update(chunk);
    this.batch.push(chunk);
    this.batchBytes += chunk.length;
    this.bytes += chunk.length;
    return this.batchBytes >= BATCH_BYTES ? this.flush() : undefined;
  }

  /** Writes everything appended so far. */
  async flush(): Promise<void> {
    if (this.batchBytes === 0) return;
    const data =
      this.batch.length === 1 ? (this.batch[0] as Buffer) : Buffer.concat(this.batch, this.batchBytes);
    this.batch = [];
    this.batchBytes = 0;
    try {
      let offset = 0;
      while (offset < data.length) offset += (await this.handle.write(data, offset)).bytesWritten;
    } catch (err) {
      throw fsError(err, "write the download", this.path);
    }
  }

  /** Drops everything: the server sent the whole file instead of the rest. */
  async restart(): Promise<void> {
    this.batch = [];
    this.batchBytes = 0;
    this.bytes = 0;
    this.hash = createHash("sha256");
    try {
      await this.handle.truncate(0);
    } catch (err) {
      throw fsError(err, "truncate the download", this.path);
    }
  }

  /** The sha256 of every byte appended or found on disk. Call once, after close(). */
  digest(): string {
    return this.hash.digest("hex");
  }

  /** Writes what is pending and closes; the file stays, so an interrupted download can resume. */
  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      await this.handle.close().catch(() => {});
    }
  }
}
