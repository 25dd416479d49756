import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { seededBytes } from "../../test/support/image-fixtures.js";
import { PartialFile } from "./partial-file.js";

// Several 4 MiB batches plus a ragged end, so batches are written while the next one fills.
const CONTENT = seededBytes(13 * 1024 * 1024 + 4321, 11);
const dirs: string[] = [];

after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tempFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "castra-partial-"));
  dirs.push(dir);
  return join(dir, "disk.partial");
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Appends `data` in uneven slices (1 byte to ~300 KiB), as a socket delivers it. */
async function appendInSlices(file: PartialFile, data: Buffer): Promise<void> {
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const length = i % 7 === 0 ? 1 : ((i * 7919) % 300_000) + 1;
    await file.append(data.subarray(at, at + length));
    at += length;
  }
}

test("a download appended in socket-sized slices lands byte for byte, with its sha256 computed on the way", async () => {
  const path = await tempFile();
  const file = await PartialFile.open(path, CONTENT.length);
  await appendInSlices(file, CONTENT);
  await file.close();
  assert.equal(file.bytes, CONTENT.length);
  assert.equal(file.digest(), sha256(CONTENT));
  assert.ok((await readFile(path)).equals(CONTENT), "the file holds exactly the appended bytes");
});

test("a resumed download hashes the bytes already on disk, then appends the rest", async () => {
  const path = await tempFile();
  const kept = 5 * 1024 * 1024 + 17;
  await writeFile(path, CONTENT.subarray(0, kept));
  const file = await PartialFile.open(path, CONTENT.length);
  assert.equal(file.bytes, kept);
  await appendInSlices(file, CONTENT.subarray(kept));
  await file.close();
  assert.equal(file.digest(), sha256(CONTENT));
  assert.ok((await readFile(path)).equals(CONTENT));
});

test("a restart while batches are in flight leaves only the bytes appended after it", async () => {
  const path = await tempFile();
  const file = await PartialFile.open(path, CONTENT.length);
  await appendInSlices(file, CONTENT.subarray(0, 9 * 1024 * 1024));
  await file.restart();
  await appendInSlices(file, CONTENT);
  await file.close();
  assert.equal(file.digest(), sha256(CONTENT));
  assert.ok((await readFile(path)).equals(CONTENT));
});
