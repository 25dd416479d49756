import assert from "node:assert/strict";
import {
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { bundleIdOf, codeCacheDir, codeCacheFile, readCodeCache, writeCodeCache } from "./code-cache.js";

const dir = await mkdtemp(join(tmpdir(), "castra-code-cache-"));
after(() => rm(dir, { recursive: true, force: true }));

const asRoot = process.getuid?.() === 0;
const ANOTHER_USER = 4242;
let count = 0;

/** An XDG_RUNTIME_DIR, with castra's own directory in it unless `withCastraDir` is false. */
async function runtime(withCastraDir = true): Promise<string> {
  count += 1;
  const xdg = join(dir, `xdg${count}`);
  await mkdir(withCastraDir ? join(xdg, "castra") : xdg, { recursive: true, mode: 0o700 });
  return xdg;
}

test("the cache directory is made private inside castra's runtime directory", async () => {
  const xdg = await runtime();
  const cacheDir = codeCacheDir({ XDG_RUNTIME_DIR: xdg });
  assert.equal(cacheDir, join(xdg, "castra", "code-cache"));
  assert.equal((await stat(cacheDir)).mode & 0o777, 0o700);
  assert.equal(codeCacheDir({ XDG_RUNTIME_DIR: xdg }), cacheDir);
});

test("no cache without castra's runtime directory (never made here), nor when it is shared, nor when off", async () => {
  const bare = await runtime(false);
  assert.equal(codeCacheDir({ XDG_RUNTIME_DIR: bare }), undefined);
  await assert.rejects(stat(join(bare, "castra")), { code: "ENOENT" });

  const shared = await runtime();
  await chmod(join(shared, "castra"), 0o770);
  assert.equal(codeCacheDir({ XDG_RUNTIME_DIR: shared }), undefined);
  await assert.rejects(stat(join(shared, "castra", "code-cache")), { code: "ENOENT" });

  const off = await runtime();
  assert.equal(codeCacheDir({ XDG_RUNTIME_DIR: off, CASTRA_CODE_CACHE: "off" }), undefined);
});

test("the bundle's id is its last line; a bundle without one gets no cache", () => {
  assert.equal(
    bundleIdOf('"use strict";\nmain();\n//# castra-bundle 0123456789abcdef\n'),
    "0123456789abcdef",
  );
  assert.equal(bundleIdOf('"use strict";\nmain();\n'), undefined);
  assert.equal(bundleIdOf("//# castra-bundle 0123456789abcdef\nmain();\n"), undefined);
});

test("one file per bundle, Node version and architecture", () => {
  assert.equal(
    codeCacheFile("/run/user/1000/castra/code-cache", "0123456789abcdef"),
    `/run/user/1000/castra/code-cache/cli-0123456789abcdef-node${process.versions.node}-${process.arch}.v8`,
  );
});

test("written 0600; the first cache of a build stays unless V8 refused it", async () => {
  const file = join(dir, "first.v8");
  writeCodeCache(file, Buffer.from("first"), false);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.deepEqual(readCodeCache(file), Buffer.from("first"));
  writeCodeCache(file, Buffer.from("second"), false);
  assert.deepEqual(readCodeCache(file), Buffer.from("first"));
  writeCodeCache(file, Buffer.from("refused, so replaced"), true);
  assert.deepEqual(readCodeCache(file), Buffer.from("refused, so replaced"));
  assert.equal(readCodeCache(join(dir, "missing.v8")), undefined);
});

test("a write that fails leaves nothing behind and changes nothing", async () => {
  const failing = join(dir, "failing");
  await mkdir(join(failing, "cache.v8", "in-the-way"), { recursive: true });
  writeCodeCache(join(failing, "cache.v8"), Buffer.from("bytecode"), true);
  assert.deepEqual(await readdir(failing), ["cache.v8"]);
  assert.deepEqual(await readdir(join(failing, "cache.v8")), ["in-the-way"]);
});

test("writing a cache removes other builds' caches not written for a week, and nothing else", async () => {
  const cacheDir = join(dir, "stale");
  await mkdir(cacheDir);
  const weekAgo = new Date(Date.now() - 8 * 24 * 3600 * 1000);
  for (const name of ["cli-old-node20.0.0-x64.v8", "cli-recent-node20.0.0-x64.v8", "notes.txt"]) {
    await writeFile(join(cacheDir, name), "x");
    if (name !== "cli-recent-node20.0.0-x64.v8") await utimes(join(cacheDir, name), weekAgo, weekAgo);
  }
  writeCodeCache(join(cacheDir, "cli-new-node20.0.0-x64.v8"), Buffer.from("bytecode"), false);
  assert.deepEqual((await readdir(cacheDir)).sort(), [
    "cli-new-node20.0.0-x64.v8",
    "cli-recent-node20.0.0-x64.v8",
    "notes.txt",
  ]);
  assert.equal(await readFile(join(cacheDir, "cli-new-node20.0.0-x64.v8"), "utf8"), "bytecode");
});

test("a cache or directory owned by someone else is not used", {
  skip: !asRoot && "needs root to chown",
}, async () => {
  const file = join(dir, "foreign.v8");
  await writeFile(file, "bytecode");
  await chown(file, ANOTHER_USER, ANOTHER_USER);
  assert.equal(readCodeCache(file), undefined);

  const xdg = await runtime();
  await chown(join(xdg, "castra"), ANOTHER_USER, ANOTHER_USER);
  assert.equal(codeCacheDir({ XDG_RUNTIME_DIR: xdg }), undefined);
});
