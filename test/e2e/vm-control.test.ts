import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { type CliResult, runCastra } from "../support/cli.js";
import { buildTestGuest, qemuSkip, type TestGuest } from "../support/guest.js";
import { guestCatalog } from "../support/guest-catalog.js";
import { killProjectQemus, pidsRunning } from "../support/processes.js";

// Per-VM control on real guests under TCG: `up web` alone, suspend and resume (the guest's console counter
// carries on), a saved state refused after its memory changed, Ctrl-C during suspend, named snapshots, destroy.
const skip = qemuSkip();
const BOOT_MS = 180_000;
const APPEND = "console=ttyS0 quiet castra.disk=1 castra.counter=1";

let guest: TestGuest;
let dir: string;
let projectName: string;

/** The test guest as a managed image from file: URLs, booted by direct kernel boot with the counter on. */
function catalog() {
  const files: Record<string, string> = {
    "rootfs.vhd": guest.vhd,
    vmlinuz: guest.kernel,
    "initramfs.cpio.gz": guest.initrd,
  };
  return guestCatalog(guest, {
    id: "counter",
    urlOf: (name) => pathToFileURL(files[name] ?? name).href,
    append: APPEND,
  });
}

function toml(webMemory: string): string {
  const vm = (name: string, memory: string) =>
    `[[vms]]\nname = "${name}"\nmanaged_image = { name = "counter", version = "v1" }\nmemory = "${memory}"\nssh = false\n`;
  return `[project]\nname = "${projectName}"\n\n${vm("web", webMemory)}\n${vm("db", "256 MiB")}`;
}

before(async () => {
  if (skip) return;
  guest = await buildTestGuest();
  dir = await realpath(await mkdtemp(join(tmpdir(), "castra-vm-control-")));
  projectName = `vm-control-${process.pid}`;
  await writeFile(join(dir, "catalog.json"), JSON.stringify(catalog()));
  await writeFile(join(dir, "castra.toml"), toml("256 MiB"));
});

after(async () => {
  if (skip || !dir) return;
  await killProjectQemus(projectName);
  await rm(dir, { recursive: true, force: true });
});

function castra(args: string[], options: { onSpawn?: Parameters<typeof runCastra>[1]["onSpawn"] } = {}) {
  return runCastra(args, {
    cwd: dir,
    env: { CASTRA_ACCEL: "tcg", CASTRA_CATALOG: join(dir, "catalog.json"), CASTRA_CACHE_DIR: "off" },
    timeoutMs: BOOT_MS,
    onSpawn: options.onSpawn,
  });
}

function ok(result: CliResult, what: string): CliResult {
  assert.equal(result.code, 0, `${what} failed:\n${result.stderr}`);
  return result;
}

const serial = () => readFile(join(dir, ".castra", "logs", "web-serial.log"), "utf8").catch(() => "");
const counters = (text: string) => [...text.matchAll(/counter=(\d+)/g)].map((m) => Number(m[1]));
const lastCounter = async () => counters(await serial()).at(-1) ?? 0;
const qemuOf = (vm: string) => pidsRunning(`guest=castra:${projectName}:${vm}`);

async function state(vm: string): Promise<string> {
  const result = await castra(["status", "--json", vm]);
  return JSON.parse(result.stdout).vms[0].state;
}

/** Waits until the console counter of web reaches at least `n`. */
async function counterReaches(n: number, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await lastCounter();
    if (last >= n) return last;
    if (Date.now() > deadline) throw new Error(`counter stayed at ${last}, wanted ${n}:\n${await serial()}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

test("up web starts only web", { skip }, async () => {
  ok(await castra(["up", "web"]), "up web");
  assert.equal((await qemuOf("web")).length, 1);
  assert.equal((await qemuOf("db")).length, 0);
  assert.equal(await state("db"), "stopped");
});

test("suspend saves web and stops QEMU; up resumes it and the counter carries on", { skip }, async () => {
  const before = await counterReaches(3);
  const suspended = ok(await castra(["suspend", "web"]), "suspend");
  assert.match(suspended.stderr, /✓ web suspended in \d+\.\d s \(saved state [\d.]+ MiB\)/);
  assert.equal((await qemuOf("web")).length, 0);
  assert.equal(await state("web"), "suspended");
  const resumed = ok(await castra(["up", "web"]), "up (resume)");
  assert.match(resumed.stderr, /Resuming web from its state saved/);
  assert.match(resumed.stderr, /web is ready \(running after/);
  const after = counters(await serial());
  const first = after[0] ?? (await counterReaches(1));
  // The guest did not boot again: its counter goes on from where it was, it does not restart at 1.
  assert.ok(first > before, `the counter restarted at ${first} after ${before}`);
  assert.equal(await state("web"), "running");
});

test("Ctrl-C during suspend leaves web running with no saved state", { skip }, async () => {
  // Ctrl-C once the save has begun.
  const interrupted = await castra(["suspend", "web"], {
    onSpawn: (child) =>
      child.stderr?.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("Suspending web")) child.kill("SIGINT");
      }),
  });
  assert.ok(interrupted.code === 130 || interrupted.code === 0, interrupted.stderr);
  const now = await state("web");
  if (interrupted.code === 130) {
    assert.equal(now, "running");
    assert.equal(existsSync(join(dir, ".castra", "web-overlay.qcow2.suspend.json")), false);
  } else {
    // The save had finished before the signal arrived: a whole state, usable as such.
    assert.equal(now, "suspended");
    ok(await castra(["up", "web"]), "resume after a completed suspend");
  }
});

test("snapshot save, change, restore: the counter goes back to the saved moment; list and delete", {
  skip,
}, async () => {
  const saved = await counterReaches((await lastCounter()) + 1);
  ok(await castra(["snapshot", "save", "--vm", "web", "s1"]), "snapshot save");
  await counterReaches(saved + 5);
  const list = ok(await castra(["snapshot", "list", "--vm", "web"]), "snapshot list");
  assert.match(list.stdout, /^s1\s+\S+ \S+\s+yes\s+[\d.]+ MiB$/m);
  const beforeRestore = (await serial()).length;
  const highest = await lastCounter();
  ok(await castra(["snapshot", "restore", "--vm", "web", "s1"]), "snapshot restore");
  await new Promise((resolve) => setTimeout(resolve, 3000));
  // Lines printed while the restore ran still count up; then the counter drops back to the saved moment.
  const afterRestore = counters((await serial()).slice(beforeRestore));
  const back = afterRestore.find((n) => n < highest);
  assert.ok(back !== undefined && back <= saved + 4, `counters ${afterRestore} after restoring ${saved}`);
  ok(await castra(["snapshot", "delete", "--vm", "web", "s1"]), "snapshot delete");
  const missing = await castra(["snapshot", "restore", "--vm", "web", "s1"]);
  assert.equal(missing.code, 66);
});

test("a state saved with 256 MiB is refused at 512 MiB until the user discards it", { skip }, async () => {
  ok(await castra(["suspend", "web"]), "suspend");
  await writeFile(join(dir, "castra.toml"), toml("512 MiB"));
  const refused = await castra(["up", "web"]);
  assert.equal(refused.code, 65, refused.stderr);
  assert.match(refused.stderr, /memory 256 MiB → 512 MiB/);
  assert.match(refused.stderr, /castra up --discard-suspended web/);
  assert.equal(await state("web"), "suspended");
  const fresh = ok(await castra(["up", "--discard-suspended", "web"]), "up --discard-suspended");
  assert.match(fresh.stderr, /web: discarded its suspended state/);
  // A cold boot: the counter starts again at 1.
  assert.equal(counters(await serial())[0] ?? (await counterReaches(1)), 1);
});

test("destroy refuses without --yes off a terminal; with --yes the next up boots from the base image", {
  skip,
}, async () => {
  assert.match(await serial(), /boots=2/, "web's disk has seen two boots by now");
  const refused = await castra(["destroy", "web"]);
  assert.equal(refused.code, 64);
  assert.match(refused.stderr, /castra destroy web --yes/);
  ok(await castra(["destroy", "web", "--yes"]), "destroy");
  assert.equal((await qemuOf("web")).length, 0);
  assert.equal(existsSync(join(dir, ".castra", "web-overlay.qcow2")), false);
  ok(await castra(["up", "web"]), "up after destroy");
  assert.match(await serial(), /boots=1/);
  ok(await castra(["down"]), "down");
});

test("down of a VM still booting gives ACPI a few seconds, not the full minute; --force skips it", {
  skip,
}, async () => {
  ok(await castra(["up", "--no-wait", "db"]), "up --no-wait db");
  const started = Date.now();
  const down = ok(await castra(["down", "db"]), "down db");
  assert.match(down.stderr, /Stopping db \(pid \d+\): still booting, so ACPI power-down gets only 5 s…/);
  assert.ok(Date.now() - started < 30_000, `down took ${Date.now() - started} ms`);
  ok(await castra(["up", "--no-wait", "db"]), "up --no-wait db");
  const forced = ok(await castra(["down", "--force", "db"]), "down --force db");
  assert.match(forced.stderr, /SIGTERM now \(--force\)/);
  assert.match(forced.stderr, /✓ db stopped by SIGTERM after \d+\.\d s/);
  assert.equal((await qemuOf("db")).length, 0);
});
