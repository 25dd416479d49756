import assert from "node:assert/strict";
import { chown, mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { codeCacheDir, codeCacheFile, readCodeCache, writeCodeCache } from "./code-cache.js";

const dir = await mkdtemp(join(tmpdir(), "castra-code-cache-"));
after(() => rm(dir, { recursive: true, force: true }));

const asRoot = process.getuid?.() === 0;
const ANOTHER_USER = 4242;

test("the cache directory is made private under XDG_RUNTIME_DIR; none when that is missing", async () => {
  const runtime = join(dir, "xdg");
  await mkdir(runtime, { mode: 0o700 });
  const cacheDir = codeCacheDir({ XDG_RUNTIME_DIR: runtime });
  assert.equal(cacheDir, join(runtime, "castra", "code-cache"));
  assert.equal((await stat(cacheDir)).mode & 0o777, 0o700);
  assert.equal(codeCacheDir({ XDG_RUNTIME_DIR: join(dir, "missing") }), undefined);
});

test("one file per bundle, Node version and architecture", () => {
  const file = codeCacheFile("/run/user/1000/castra/code-cache", "0123456789abcdef");
  assert.equal(
    file,
    `/run/user/1000/castra/code-cache/cli-0123456789abcdef-node${process.versions.node}-${process.arch}.v8`,
  );
});

test("written whole with mode 0600 and read back; nothing is left behind when writing fails", async () => {
  const file = join(dir, "whole.v8");
  writeCodeCache(file, Buffer.from("bytecode"));
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.deepEqual(readCodeCache(file), Buffer.from("bytecode"));
  assert.equal(readCodeCache(join(dir, "missing.v8")), undefined);
  const gone = join(dir, "gone", "cache.v8");
  writeCodeCache(gone, Buffer.from("bytecode"));
  await assert.rejects(readdir(join(dir, "gone")), { code: "ENOENT" });
});

test("a cache or directory owned by someone else is not used", {
  skip: !asRoot && "needs root to chown",
}, async () => {
  const file = join(dir, "foreign.v8");
  await writeFile(file, "bytecode");
  await chown(file, ANOTHER_USER, ANOTHER_USER);
  assert.equal(readCodeCache(file), undefined);

  const runtime = join(dir, "xdg-foreign");
  await mkdir(join(runtime, "castra"), { recursive: true, mode: 0o700 });
  await chown(join(runtime, "castra"), ANOTHER_USER, ANOTHER_USER);
  assert.equal(codeCacheDir({ XDG_RUNTIME_DIR: runtime }), undefined);
});
