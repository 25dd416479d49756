import { type FileHandle, open } from "node:fs/promises";
import { OPEN_PRIVATE } from "./private-files.js";

const BLOCK = 64 * 1024;

// Logs are read where castra wrote them, never through a link planted in their place (OPEN_PRIVATE.read).

/**
 * The last `count` lines of a file, read backwards in blocks: a 200 MB log costs a few reads, not 200 MB.
 * A missing file rejects with ENOENT.
 */
export async function readTailLines(path: string, count: number): Promise<string[]> {
  return (await readTail(path, count)).lines;
}

/** The last `count` lines and the file size they end at (where following the file resumes). */
export async function readTail(path: string, count: number): Promise<{ lines: string[]; size: number }> {
  const handle = await open(path, OPEN_PRIVATE.read);
  try {
    const { size } = await handle.stat();
    if (count <= 0) return { lines: [], size };
    const chunks: Buffer[] = [];
    let newlines = 0;
    let position = size;
    // One more newline than lines wanted: the line before the first one we keep must be complete.
    while (position > 0 && newlines <= count) {
      const length = Math.min(BLOCK, position);
      position -= length;
      const chunk = await readAt(handle, position, length);
      chunks.unshift(chunk);
      // indexOf scans natively: a byte-by-byte loop in JS costs more than the read itself.
      for (let at = chunk.indexOf(0x0a); at >= 0; at = chunk.indexOf(0x0a, at + 1)) newlines++;
    }
    const lines = Buffer.concat(chunks).toString("utf8").split("\n");
    if (lines.at(-1) === "") lines.pop();
    return { lines: lines.slice(-count).map(stripCarriageReturn), size };
  } finally {
    await handle.close();
  }
}

/** Whether `text` occurs anywhere in the file, scanning forward in blocks (false when the file is missing). */
export async function scanFileFor(path: string, text: string): Promise<boolean> {
  let handle: FileHandle;
  try {
    handle = await open(path, OPEN_PRIVATE.read);
  } catch {
    return false;
  }
  try {
    const needle = Buffer.from(text);
    let carry = Buffer.alloc(0);
    let position = 0;
    for (;;) {
      const chunk = await readAt(handle, position, BLOCK);
      if (chunk.length === 0) return false;
      position += chunk.length;
      const window = Buffer.concat([carry, chunk]);
      if (window.includes(needle)) return true;
      // Keep enough of the end to find a match that straddles two blocks.
      carry = window.subarray(Math.max(0, window.length - needle.length + 1));
    }
  } finally {
    await handle.close();
  }
}

/** Bytes appended since `offset` (at most `max`), for following a growing file. */
export async function readFrom(path: string, offset: number, max = 1024 * 1024): Promise<Buffer> {
  const handle = await open(path, OPEN_PRIVATE.read);
  try {
    return await readAt(handle, offset, max);
  } finally {
    await handle.close();
  }
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead);
}

function stripCarriageReturn(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}
