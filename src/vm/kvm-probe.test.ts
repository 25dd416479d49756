import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { probeAccelerator } from "./kvm-probe.js";

const dir = await mkdtemp(join(tmpdir(), "castra-kvm-probe-test-"));
after(() => rm(dir, { recursive: true, force: true }));

/** A stand-in for qemu-system-x86_64: a shell script; `$$` is written to `pid` so a test can find it. */
async function fakeQemu(body: string): Promise<string> {
  const path = join(dir, `qemu-${Math.random().toString(36).slice(2)}`);
  await writeFile(path, `#!/bin/sh\necho $$ > '${path}.pid'\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test("the probe guest runs under TCG and asks QEMU to exit (the same guest proves KVM)", async (t) => {
  if (spawnSync("qemu-system-x86_64", ["--version"]).error) return t.skip("QEMU is not installed");
  const result = await probeAccelerator("qemu-system-x86_64", "tcg", 10_000);
  assert.equal(result.ran, true, JSON.stringify(result));
});

test("a guest that never runs is reported within the timeout and its QEMU is killed", async () => {
  const qemu = await fakeQemu("exec sleep 30");
  const started = Date.now();
  const result = await probeAccelerator(qemu, "kvm", 300);
  assert.deepEqual(result, { ran: false, reason: "the test guest did not run within 300 ms" });
  assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  const pid = Number(await readFile(`${qemu}.pid`, "utf8"));
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(alive(pid), false, "the probe's QEMU still runs");
});

test("QEMU refusing the accelerator: its own last words are the reason", async () => {
  const qemu = await fakeQemu(
    "echo 'Could not access KVM kernel module: No such file or directory' >&2\n" +
      "echo 'qemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory' >&2\nexit 1",
  );
  assert.deepEqual(await probeAccelerator(qemu, "kvm"), {
    ran: false,
    reason: "-accel kvm: failed to initialize kvm: No such file or directory",
  });
});
