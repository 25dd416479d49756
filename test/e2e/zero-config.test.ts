import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type CliResult, runCastra } from "../support/cli.js";
import { buildTestGuest, qemuSkip, type TestGuest } from "../support/guest.js";
import { guestCatalog } from "../support/guest-catalog.js";
import { FixtureServer } from "../support/http-server.js";
import { writeJson } from "../support/image-fixtures.js";
import { killProjectQemus } from "../support/processes.js";

// The managed-image promise end to end: a test catalog whose alpine-minimal@v1 is the test guest, served
// from 127.0.0.1, booted by direct kernel boot under TCG.
const skip = qemuSkip();
const BOOT_MS = 180_000;
const IMAGE_DIR = join(".castra", "images", "alpine-minimal", "v1");
const APPEND = "console=ttyS0 quiet castra.disk=1";

let guest: TestGuest;
let server: FixtureServer;
let work: string;
let catalogFile: string;
const projects: string[] = [];

function catalogAt(origin: string, rootSha256?: string) {
  return guestCatalog(guest, { urlOf: (name) => `${origin}/${name}`, append: APPEND, rootSha256 });
}

before(async () => {
  if (skip) return;
  guest = await buildTestGuest();
  work = await realpath(await mkdtemp(join(tmpdir(), "castra-zero-config-")));
  server = await FixtureServer.start();
  server.serve("/rootfs.vhd", { file: guest.vhd });
  server.serve("/vmlinuz", { file: guest.kernel });
  server.serve("/initramfs.cpio.gz", { file: guest.initrd });
  catalogFile = writeJson(join(work, "catalog.json"), catalogAt(server.origin));
});

after(async () => {
  if (skip) return;
  for (const dir of projects) await killProjectQemus(basename(dir));
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A fresh empty project directory; its name is the synthesized project's name. */
async function newProject(name: string): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir);
  projects.push(dir);
  return dir;
}

function castra(dir: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCastra(args, {
    cwd: dir,
    env: { CASTRA_ACCEL: "tcg", CASTRA_CATALOG: catalogFile, CASTRA_CACHE_DIR: "off", ...env },
    timeoutMs: BOOT_MS,
  });
}

function assertExit(result: CliResult, code: number, what: string): void {
  assert.equal(result.code, code, `${what}: exit ${result.code}\n${result.stdout}\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /\n\s+at /, `${what}: printed a stack trace`);
}

/** Files left in the project's image directory (the only thing a failure may leave is *.partial). */
async function imageFiles(dir: string): Promise<string[]> {
  const path = join(dir, IMAGE_DIR);
  return existsSync(path) ? (await readdir(path)).filter((f) => f !== ".lock") : [];
}

async function qemuArgv(dir: string, vm: string): Promise<string[]> {
  return JSON.parse(await readFile(join(dir, ".castra", "run", `${vm}.pid`), "utf8")).argv;
}

describe("castra up with managed images", { skip }, () => {
  test("an empty directory boots the managed VM; a second up is a cache hit with no request", async () => {
    const dir = await newProject("empty-dir");
    const first = await castra(dir, ["up"]);
    assertExit(first, 0, "first up");
    assert.equal(existsSync(join(dir, "castra.toml")), false, "no castra.toml is written");
    const out = first.stderr;
    assert.match(out, /Downloading root disk .* from http:\/\/127\.0\.0\.1/);
    assert.match(out, /Converted raw → qcow2/);
    assert.match(out, /alpine is ready/);
    assert.match(first.stdout, /castra down/, "the end of up says how to stop the VM");
    assert.match(first.stdout, /alpine-serial\.log/, "the end of up says where the serial log is");
    const manifest = JSON.parse(await readFile(join(dir, IMAGE_DIR, "manifest.json"), "utf8"));
    assert.equal(manifest.id ?? manifest.image, "alpine-minimal");
    assert.ok(existsSync(join(dir, IMAGE_DIR, "rootfs.qcow2")));
    const serial = await readFile(join(dir, ".castra", "logs", "alpine-serial.log"), "utf8");
    assert.match(serial, /login:/);
    assert.ok(existsSync(join(dir, ".castra", "logs", "alpine.log")), "QEMU's own log");

    const argv = await qemuArgv(dir, "alpine");
    assert.deepEqual(argv.slice(argv.indexOf("-kernel"), argv.indexOf("-kernel") + 2), [
      "-kernel",
      join(dir, IMAGE_DIR, "vmlinuz"),
    ]);

    const status = await castra(dir, ["status", "--json"]);
    assertExit(status, 0, "status");
    const vm = JSON.parse(status.stdout).vms[0];
    assert.equal(vm.name, "alpine");
    assert.equal(vm.state, "running");

    const down = await castra(dir, ["down"]);
    assertExit(down, 0, "down");
    assert.doesNotMatch(down.stderr, /SIGTERM|SIGKILL/, "the guest powered off through ACPI");
    assert.match(
      await readFile(join(dir, ".castra", "logs", "alpine-serial.log"), "utf8"),
      /power button pressed/,
    );

    const requestsBefore = server.requests.length;
    const second = await castra(dir, ["up"]);
    assertExit(second, 0, "second up");
    assert.match(second.stderr, /Cache hit: alpine-minimal@v1/);
    assert.doesNotMatch(second.stderr, /Downloading/);
    assert.equal(server.requests.length, requestsBefore, "a cache hit makes no HTTP request");
    assertExit(await castra(dir, ["down"]), 0, "second down");
  });

  test("managed_image in castra.toml carries the profile's kernel, initrd and append; profile = false none", async () => {
    for (const useProfile of [true, false]) {
      const dir = await newProject(`managed-profile-${useProfile}`);
      const profile = useProfile ? "" : ", profile = false";
      await writeFile(
        join(dir, "castra.toml"),
        `[project]\nname = "${basename(dir)}"\n\n[[vms]]\nname = "box"\n` +
          `managed_image = { name = "alpine-minimal", version = "v1"${profile} }\nmemory = "256 MiB"\n`,
      );
      assertExit(await castra(dir, ["up", "--no-wait"]), 0, `up (profile ${useProfile})`);
      const argv = await qemuArgv(dir, "box");
      for (const flag of ["-kernel", "-initrd", "-append"])
        assert.equal(argv.includes(flag), useProfile, flag);
      if (useProfile) assert.equal(argv[argv.indexOf("-append") + 1], APPEND);
      assertExit(await castra(dir, ["down", "--timeout", "5"]), 0, "down");
    }
  });

  test("a bring-your-own image boots with no image directory, request or image-manager log", async () => {
    const dir = await newProject("byo");
    await cp(guest.biosDisk, join(dir, "base.qcow2"));
    await writeFile(
      join(dir, "castra.toml"),
      `[project]\nname = "byo"\n\n[[vms]]\nname = "devbox"\nbase_image = "base.qcow2"\nmemory = "256 MiB"\n` +
        `ready_pattern = "login:"\n`,
    );
    const requestsBefore = server.requests.length;
    assertExit(await castra(dir, ["up"]), 0, "up");
    assertExit(await castra(dir, ["down"]), 0, "down");
    assert.equal(server.requests.length, requestsBefore, "no HTTP request");
    assert.equal(existsSync(join(dir, ".castra", "images")), false, "no images directory");
    assert.equal(
      existsSync(join(dir, ".castra", "logs", "image-manager.log")),
      false,
      "no image-manager log",
    );
  });

  test("failures are specific and leave nothing but .partial files", async () => {
    const stopped = await newProject("server-stopped");
    const closedCatalog = writeJson(join(work, "closed.json"), catalogAt("http://127.0.0.1:9"));
    const unreachable = await castra(stopped, ["up"], { CASTRA_CATALOG: closedCatalog });
    assertExit(unreachable, 69, "server stopped");
    assert.match(unreachable.stderr, /127\.0\.0\.1/);
    assert.match(unreachable.stderr, /hint:/);
    for (const f of await imageFiles(stopped)) assert.match(f, /\.partial$/);

    const mismatch = await newProject("checksum-mismatch");
    const badCatalog = writeJson(join(work, "bad.json"), catalogAt(server.origin, "0".repeat(64)));
    const bad = await castra(mismatch, ["up"], { CASTRA_CATALOG: badCatalog });
    assertExit(bad, 65, "checksum mismatch");
    assert.match(bad.stderr, /sha256/);
    for (const f of await imageFiles(mismatch)) assert.match(f, /\.partial$/);

    // A PATH with node and QEMU but no qemu-img.
    const noQemuImg = await newProject("no-qemu-img");
    const bin = join(work, "bin-without-qemu-img");
    await mkdir(bin);
    await symlink(process.execPath, join(bin, "node"));
    await symlink("/usr/bin/qemu-system-x86_64", join(bin, "qemu-system-x86_64"));
    const requestsBefore = server.requests.length;
    const missing = await castra(noQemuImg, ["up"], { PATH: bin });
    assertExit(missing, 72, "qemu-img missing");
    assert.match(missing.stderr, /qemu-img/);
    assert.equal(server.requests.length, requestsBefore, "no request before the tool check");
    assert.deepEqual(await imageFiles(noQemuImg), []);
  });

  test("a pre-seeded cache boots with --offline", async () => {
    const seeded = await newProject("seeded");
    const source = await newProject("seed-source");
    assertExit(await castra(source, ["images", "pull"]), 0, "pull into the source project");
    await cp(join(source, IMAGE_DIR), join(seeded, IMAGE_DIR), { recursive: true });
    const requestsBefore = server.requests.length;
    const up = await castra(seeded, ["up", "--offline"]);
    assertExit(up, 0, "offline up");
    assert.equal(server.requests.length, requestsBefore, "--offline makes no request");
    assertExit(await castra(seeded, ["down"]), 0, "down");
  });
});
