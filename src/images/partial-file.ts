import { createHash, type Hash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import { fsError } from "../errors.js";
import { OPEN_PRIVATE, openPrivate } from "../host/private-files.js";

/** Writes reach the disk in batches this large: fewer syscalls while the socket keeps filling. */
const BATCH_BYTES = 4 * 1024 * 1024;
/** Batches on their way to disk before append() asks the caller to wait: memory stays at a few batches. */
const MAX_WRITES_IN_FLIGHT = 2;

/**
 * A `.partial` download that is hashed as it grows: bytes already on disk are hashed once when it is
 * opened, new bytes as they are appended, so the finished file never needs a second pass.
 */
export class PartialFile {
  private hash: Hash = createHash("sha256");
  /** The batch being filled; full ones are written while the next fills, then reused. */
  private batch: Buffer | undefined;
  private batchBytes = 0;
  private spare: Buffer[] = [];
  /** Writes in flight, oldest first; each starts when the one before it is done. */
  private writes: Promise<void>[] = [];
  private failure: unknown;
  /** Bytes hashed so far: on disk plus the batch not yet written. */
  bytes = 0;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  /** Opens (or creates) `path`; a file larger than `maxBytes` cannot be a prefix of the download and restarts. */
  static async open(path: string, maxBytes: number): Promise<PartialFile> {
    // Never through a link: a planted `.partial` link would have the download appended to its target.
    const handle = await openPrivate(path, "append", "create the download file");
    let existing: number;
    try {
      existing = (await handle.stat()).size;
      if (existing > maxBytes) {
        await handle.truncate(0);
        existing = 0;
      }
    } catch (err) {
      await handle.close();
      throw fsError(err, "read the partial download", path);
    }
    const file = new PartialFile(path, handle);
    if (existing > 0) await file.hashExisting(existing);
    return file;
  }

  /** Reads through one reused buffer (a read stream would allocate one per chunk). */
  private async hashExisting(length: number): Promise<void> {
    const buffer = Buffer.allocUnsafe(BATCH_BYTES);
    try {
      const reader = await open(this.path, OPEN_PRIVATE.read);
      try {
        for (let at = 0; at < length; ) {
          const { bytesRead } = await reader.read(buffer, 0, Math.min(buffer.length, length - at), at);
          if (bytesRead === 0)
            throw Object.assign(new Error("the file shrank while it was read"), { code: "EIO" });
          this.hash.update(buffer.subarray(0, bytesRead));
          at += bytesRead;
        }
      } finally {
        await reader.close();
      }
    } catch (err) {
      await this.handle.close();
      throw fsError(err, "read the partial download", this.path);
    }
    this.bytes = length;
  }

  /**
   * Adds a chunk, copied (it may be a view of a buffer the caller reuses). Full batches go to disk without
   * waiting; the returned promise, when there is one, asks the caller to wait for the disk before the next.
   */
  append(chunk: Buffer): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    this.hash.update(chunk);
    this.bytes += chunk.length;
    for (let at = 0; at < chunk.length; ) {
      this.batch ??= this.spare.pop() ?? Buffer.allocUnsafe(BATCH_BYTES);
      const copied = chunk.copy(this.batch, this.batchBytes, at);
      at += copied;
      this.batchBytes += copied;
      if (this.batchBytes === BATCH_BYTES) this.queueBatch();
    }
    return this.writes.length >= MAX_WRITES_IN_FLIGHT ? this.writes[0] : undefined;
  }

  /** Writes everything appended so far; rejects with the first write error. */
  async flush(): Promise<void> {
    if (this.batchBytes > 0) this.queueBatch();
    await this.writes.at(-1);
  }

  private queueBatch(): void {
    const buffer = this.batch as Buffer;
    const data = buffer.subarray(0, this.batchBytes);
    this.batch = undefined;
    this.batchBytes = 0;
    const write = (this.writes.at(-1) ?? Promise.resolve()).then(() => this.writeAll(data));
    this.writes.push(write);
    write.then(
      () => {
        this.writes.shift();
        this.spare.push(buffer);
      },
      // A failed write stays first in `writes`: append() and flush() report it.
      (err) => {
        this.failure ??= err;
      },
    );
  }

  private async writeAll(data: Buffer): Promise<void> {
    try {
      let offset = 0;
      while (offset < data.length) offset += (await this.handle.write(data, offset)).bytesWritten;
    } catch (err) {
      throw fsError(err, "write the download", this.path);
    }
  }

  /** Drops everything: the server sent the whole file instead of the rest. */
  async restart(): Promise<void> {
    this.batchBytes = 0;
    await this.writes.at(-1)?.catch(() => {});
    this.writes = [];
    this.failure = undefined;
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
