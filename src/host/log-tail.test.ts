import assert from "node:assert/strict";
import { appendFile, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { readTailLines, scanFileFor } from "./log-tail.js";

const dir = await mkdtemp(join(tmpdir(), "castra-tail-"));
after(() => rm(dir, { recursive: true, force: true }));

test("the tail of a 4 GiB log comes from its end: quick, and without reading the whole file", async () => {
  const path = join(dir, "huge.log");
  // A sparse 4 GiB file: reading it whole would exceed Node's largest string and take many seconds.
  const handle = await open(path, "w");
  await handle.truncate(4 * 1024 ** 3);
  await handle.close();
  const lines = Array.from({ length: 50 }, (_, i) => `serial line ${i + 1}`);
  await appendFile(path, `\n${lines.join("\n")}\n`);
  const started = performance.now();
  const tail = await readTailLines(path, 3);
  assert.deepEqual(tail, ["serial line 48", "serial line 49", "serial line 50"]);
  assert.ok(performance.now() - started < 1000, "tail took longer than a second");
});

test("tail handles a last line without newline, CRLF, fewer lines than asked, and lines longer than a block", async () => {
  const path = join(dir, "small.log");
  const long = "x".repeat(200_000);
  await writeFile(path, `first\r\n${long}\nlogin: `);
  assert.deepEqual(await readTailLines(path, 10), ["first", long, "login: "]);
  assert.deepEqual(await readTailLines(path, 1), ["login: "]);
  assert.deepEqual(await readTailLines(path, 0), []);
  await assert.rejects(readTailLines(join(dir, "missing.log"), 5), { code: "ENOENT" });
});

test("a pattern is found even when it straddles two read blocks", async () => {
  const path = join(dir, "straddle.log");
  // "login:" begins 3 bytes before the 64 KiB block boundary.
  await writeFile(path, `${"a".repeat(64 * 1024 - 3)}login: `);
  assert.equal(await scanFileFor(path, "login:"), true);
  assert.equal(await scanFileFor(path, "castra-test-guest: ready"), false);
  assert.equal(await scanFileFor(join(dir, "missing.log"), "login:"), false);
});
