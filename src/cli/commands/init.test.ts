import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { loadProjectFile } from "../../config/load.js";
import { CannotCreateError, UsageError } from "../../errors.js";
import { type CapturedIO, captureIO } from "../io.js";
import { runInit } from "./init.js";

let dir: string;
let io: CapturedIO;
const ctx = () => ({ io, global: { skipDiscovery: false }, signal: new AbortController().signal });

beforeEach(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "castra-init-")));
  io = captureIO({ cwd: dir });
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("init writes a starter castra.toml that parses with zero warnings, and a private .castra/", async () => {
  assert.equal(await runInit({}, ctx()), 0);
  const project = await loadProjectFile(join(dir, "castra.toml"));
  assert.deepEqual(project.warnings, []);
  assert.equal(project.name, basename(dir));
  assert.deepEqual(
    project.vms.map((vm) => [vm.name, vm.source, vm.overlay, vm.portForwards, vm.mounts, vm.provision]),
    [
      [
        "alpine",
        { kind: "managed", name: "alpine-minimal", version: "v1", useProfile: true },
        join(dir, ".castra", "alpine-overlay.qcow2"),
        [],
        [{ host: dir, guest: "/project", writable: false }],
        [],
      ],
    ],
  );
  assert.equal(project.broker, undefined);
  assert.equal((await stat(join(dir, ".castra"))).mode & 0o777, 0o700);
  assert.deepEqual(
    (await readdir(dir)).sort(),
    [".castra", "castra.toml"],
    "no temporary file is left behind",
  );
  assert.match(io.stderr(), /Wrote castra\.toml/);
  assert.match(io.stderr(), /next: castra up/);
});

test("the starter file explains the bring-your-own image, cpus, memory and the broker in comments", async () => {
  await runInit({}, ctx());
  const text = await readFile(join(dir, "castra.toml"), "utf8");
  for (const line of [
    '# base_image = "images/devbox.qcow2"',
    "# cpus = 2",
    '# memory = "1024 MiB"',
    "# [broker]",
    "# port = 7070",
    "[[vms.mounts]]",
    '# run = "apk add --no-cache git make"',
  ]) {
    assert.ok(text.includes(line), `missing ${line}`);
  }
  // Every key that is set has a comment line right above it.
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    if (/^\w+ = /.test(line)) assert.match(lines[i - 1] ?? "", /^#/, `no explanation above: ${line}`);
  });
});

test("init refuses to overwrite without --force, and --force replaces the file", async () => {
  await runInit({}, ctx());
  await writeFile(join(dir, "castra.toml"), "# mine\n");
  await assert.rejects(runInit({}, ctx()), (err: unknown) => {
    assert.ok(err instanceof CannotCreateError);
    assert.equal(err.exitCode, 73);
    assert.equal(err.headline, "castra.toml already exists");
    assert.match(err.hint ?? "", /^castra init --force/);
    return true;
  });
  assert.equal(await readFile(join(dir, "castra.toml"), "utf8"), "# mine\n");
  assert.equal(await runInit({ force: true }, ctx()), 0);
  assert.match(await readFile(join(dir, "castra.toml"), "utf8"), /\[\[vms\]\]/);
});

test("--project-name names the project, quoted safely", async () => {
  await runInit({ projectName: 'my "shop" ünïcode' }, ctx());
  assert.equal((await loadProjectFile(join(dir, "castra.toml"))).name, 'my "shop" ünïcode');
  await assert.rejects(runInit({ projectName: "bad\nname", force: true }, ctx()), UsageError);
  await assert.rejects(runInit({ projectName: " ", force: true }, ctx()), UsageError);
});

test("-o takes a directory (created if missing) or a .toml file path", async () => {
  await runInit({ output: "new/place" }, ctx());
  const inDir = await loadProjectFile(join(dir, "new", "place", "castra.toml"));
  assert.equal(inDir.name, "place");
  assert.match(io.stderr(), /next: cd new\/place && castra up/);

  await mkdir(join(dir, "existing.toml"));
  await runInit({ output: "existing.toml" }, ctx());
  await stat(join(dir, "existing.toml", "castra.toml"));

  await runInit({ output: "conf/dev.toml" }, ctx());
  const file = await loadProjectFile(join(dir, "conf", "dev.toml"));
  assert.equal(file.stateDir, join(dir, "conf", ".castra"));
  await stat(join(dir, "conf", ".castra"));
  await assert.rejects(runInit({ output: "conf/dev.toml" }, ctx()), /conf\/dev\.toml already exists/);
});

test("init does not touch an existing .castra/ and its contents", async () => {
  await mkdir(join(dir, ".castra", "images"), { recursive: true });
  await writeFile(join(dir, ".castra", ".gitignore"), "custom\n");
  await runInit({}, ctx());
  assert.equal(await readFile(join(dir, ".castra", ".gitignore"), "utf8"), "custom\n");
  await stat(join(dir, ".castra", "images"));
});
