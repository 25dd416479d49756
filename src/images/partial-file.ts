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
  /** The batches on their way to disk, in order: the socket keeps filling the next one meanwhile. */
  private writing: Promise<void> | undefined;
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

  /**
   * Adds a chunk. A full batch goes to disk without waiting; the returned promise (await it) only makes the
   * caller wait when the previous batch is still being written, so memory stays at a few batches.
   */
  append(chunk: Buffer): Promise<void> | undefined {
    this.hash.update(chunk);
    this.batch.push(chunk);
    this.batchBytes += chunk.length;
    this.bytes += chunk.length;
    if (this.batchBytes < BATCH_BYTES) return undefined;
    const previous = this.writing;
    this.queueBatch();
    return previous;
  }

  /** Writes everything appended so far; rejects with the first write error. */
  async flush(): Promise<void> {
    if (this.batchBytes > 0) this.queueBatch();
    await this.writing;
  }

  private queueBatch(): void {
    const chunks = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    const write = (this.writing ?? Promise.resolve()).then(() => this.writeChunks(chunks));
    this.writing = write;
    // A failed write stays in `writing`, so the next flush() reports it; this handler only marks it seen.
    write.then(
      () => {
        if (this.writing === write) this.writing = undefined;
      },
      () => {},
    );
  }

  /** One writev per batch: the chunks go to disk as they came off the socket, never copied into one buffer. */
  private async writeChunks(chunks: Buffer[]): Promise<void> {
    try {
      let rest = chunks;
      while (rest.length > 0) {
        const { bytesWritten } = await this.handle.writev(rest);
        if (bytesWritten === 0) throw Object.assign(new Error("the disk took no bytes"), { code: "EIO" });
        rest = dropWritten(rest, bytesWritten);
      }
    } catch (err) {
      throw fsError(err, "write the download", this.path);
    }
  }

  /** Drops everything: the server sent the whole file instead of the rest. */
  async restart(): Promise<void> {
    this.batch = [];
    this.batchBytes = 0;
    await this.writing?.catch(() => {});
    this.writing = undefined;
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

/** What remains of `chunks` after the first `written` bytes reached the file (a short writev). */
function dropWritten(chunks: Buffer[], written: number): Buffer[] {
  let skip = written;
  let i = 0;
  while (i < chunks.length && skip >= (chunks[i] as Buffer).length) skip -= (chunks[i++] as Buffer).length;
  const rest = chunks.slice(i);
  if (skip > 0 && rest[0]) rest[0] = rest[0].subarray(skip);
  return rest;
}
