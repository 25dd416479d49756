import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ExitCode, LockTimeoutError } from "../errors.js";
import { acquireLock } from "./lock.js";

const dir = await mkdtemp(join(tmpdir(), "castra-lock-"));
after(() => rm(dir, { recursive: true, force: true }));

test("a lock records its holder and is released", async () => {
  const path = join(dir, "a.lock");
  const lock = await acquireLock(path, { purpose: "project" });
  const holder = JSON.parse(await readFile(path, "utf8"));
  assert.equal(holder.pid, process.pid);
  await lock.release();
  const again = await acquireLock(path, { purpose: "project" });
  await again.release();
});

test("a second caller waits for a live holder, names it, then times out with exit 75", async () => {
  const path = join(dir, "b.lock");
  const sleeper = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    await writeFile(path, JSON.stringify({ pid: sleeper.pid, purpose: "castra up", since: "now" }));
    let waitedFor: number | undefined;
    const err = await acquireLock(path, {
      purpose: "project",
      timeoutMs: 300,
      onWait: (h) => {
        waitedFor = h.pid;
      },
    }).catch((e: unknown) => e);
    assert.ok(err instanceof LockTimeoutError);
    assert.equal(err.exitCode, ExitCode.tempFail);
    assert.match(err.headline, new RegExp(`pid ${sleeper.pid}`));
    assert.equal(waitedFor, sleeper.pid);
  } finally {
    sleeper.kill("SIGKILL");
  }
});

test("a lock left by a dead process is taken over", async () => {
  const path = join(dir, "c.lock");
  const dead = spawn("true");
  await new Promise((r) => dead.on("exit", r));
  await writeFile(path, JSON.stringify({ pid: dead.pid, purpose: "castra up", since: "then" }));
  const lock = await acquireLock(path, { purpose: "project", timeoutMs: 1000 });
  assert.equal(JSON.parse(await readFile(path, "utf8")).pid, process.pid);
  await lock.release();
});

test("a waiter gets the lock as soon as the holder releases it", async () => {
  const path = join(dir, "d.lock");
  const first = await acquireLock(path, { purpose: "image" });
  setTimeout(() => void first.release(), 200);
  const second = await acquireLock(path, { purpose: "image", timeoutMs: 5000 });
  await second.release();
});

test("a holder whose pid now runs another program (a reused pid) is taken over at once", async () => {
  const path = join(dir, "reused.lock");
  const sleeper = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    const argv = ["node", "/usr/lib/castra.js", "up"];
    await writeFile(path, JSON.stringify({ pid: sleeper.pid, purpose: "castra up", since: "then", argv }));
    const lock = await acquireLock(path, { purpose: "project", timeoutMs: 300 });
    assert.equal(JSON.parse(await readFile(path, "utf8")).pid, process.pid);
    await lock.release();
  } finally {
    sleeper.kill("SIGKILL");
  }
});
