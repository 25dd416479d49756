import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  access,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  realpath,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { findOnPath } from "../../src/host/tools.js";
import { type CliResult, runCastra } from "../support/cli.js";
import { buildTestGuest, qemuSkip } from "../support/guest.js";

// Failures that `up`, `status` and `down` must catch before (or without) booting anything.
const skip = qemuSkip();
let root: string;
let base: string;
let count = 0;
const sleepers: ChildProcess[] = [];

before(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), "castra-faults-")));
  base = join(root, "base.qcow2");
  if (!skip) await copyFile((await buildTestGuest()).biosDisk, base);
});

after(async () => {
  for (const sleeper of sleepers) sleeper.kill("SIGKILL");
  await rm(root, { recursive: true, force: true });
});

/** A project directory with one VM `devbox` on `baseImage`, plus extra TOML for that VM. */
async function project(baseImage: string, vmExtra = ""): Promise<string> {
  count += 1;
  const dir = join(root, `p${count}`);
  await mkdir(dir);
  await writeFile(
    join(dir, "castra.toml"),
    `version = "0.1.0"\n\n[project]\nname = "faults-${process.pid}-${count}"\n\n` +
      `[[vms]]\nname = "devbox"\nbase_image = "${baseImage}"\nmemory = "256 MiB"\nready_pattern = "login:"\n${vmExtra}`,
  );
  return dir;
}

function castra(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCastra(args, { cwd, env: { CASTRA_ACCEL: "tcg", CASTRA_DEBUG: "", ...env } });
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

test("no qemu binaries on PATH: exit 72 with install lines, nothing created", { skip }, async () => {
  const dir = await project(base);
  // Only perl (which the metadata service's relay needs): QEMU's tools are the one problem.
  const emptyBin = join(root, "empty-bin");
  await mkdir(emptyBin, { recursive: true });
  await symlink((await findOnPath("perl")) as string, join(emptyBin, "perl")).catch(() => {});
  const result = await castra(["up"], dir, { PATH: emptyBin });
  assert.equal(result.code, 72, result.stderr);
  assert.match(result.stderr, /error: qemu-system-x86_64 and qemu-img are not installed/);
  assert.match(result.stderr, /apt-get install qemu-system-x86 qemu-utils/);
  assert.match(result.stderr, /dnf install qemu-system-x86 qemu-img/);
  assert.match(result.stderr, /brew install qemu/);
  assert.equal(await exists(join(dir, ".castra/devbox-overlay.qcow2")), false);
});

test("a missing base image: exit 66 naming the file and the config key", { skip }, async () => {
  const dir = await project("images/missing.qcow2");
  const result = await castra(["up"], dir);
  assert.equal(result.code, 66, result.stderr);
  assert.match(result.stderr, /error: vm devbox: base image .*images\/missing\.qcow2 does not exist/);
  assert.match(result.stderr, /hint: .*base_image/);
});

test("a host port in use: preflight names the process holding it and starts nothing", { skip }, async () => {
  const holder: Server = createServer();
  await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
  const { port } = holder.address() as { port: number };
  try {
    const dir = await project(base, `\n[[vms.port_forwards]]\nhost = ${port}\nguest = 22\n`);
    const result = await castra(["up"], dir);
    assert.equal(result.code, 70, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`127\\.0\\.0\\.1:${port}/tcp .* is already in use by .*node.* \\(pid ${process.pid}\\)`),
    );
    assert.match(result.stderr, new RegExp(`hint: stop pid ${process.pid}`));
    assert.equal(await exists(join(dir, ".castra/devbox-overlay.qcow2")), false);
    assert.equal(await exists(join(dir, ".castra/run/devbox.pid")), false);
  } finally {
    holder.close();
  }
});

test("a pid file pointing at an unrelated live process: stopped, and down leaves that process alone", {
  skip,
}, async () => {
  const dir = await project(base);
  const sleeper = spawn("sleep", ["600"], { stdio: "ignore" });
  sleepers.push(sleeper);
  await new Promise((resolve) => sleeper.once("spawn", resolve));
  await mkdir(join(dir, ".castra/run"), { recursive: true });
  const record = {
    pid: sleeper.pid,
    argv: ["/usr/bin/qemu-system-x86_64", "-name", "guest=castra:faults:devbox"],
    startedAt: new Date().toISOString(),
    accel: "tcg",
    baseImage: base,
    overlay: join(dir, ".castra/devbox-overlay.qcow2"),
    cpus: 1,
    memoryBytes: 268435456,
    qmpSocket: join(dir, ".castra/run/devbox.qmp"),
    serialLog: join(dir, ".castra/logs/devbox-serial.log"),
    qemuLog: join(dir, ".castra/logs/devbox.log"),
  };
  await writeFile(join(dir, ".castra/run/devbox.pid"), JSON.stringify(record));

  const status = await castra(["status", "--json"], dir);
  assert.equal(status.code, 0, status.stderr);
  const vm = JSON.parse(status.stdout).vms[0];
  assert.equal(vm.state, "stopped");
  assert.equal(vm.pid, null);

  const down = await castra(["down"], dir);
  assert.equal(down.code, 0, down.stderr);
  assert.match(
    down.stderr,
    /devbox was not running \(pid \d+ is another program now\): removed its stale pid file/,
  );
  assert.equal(sleeper.exitCode, null);
  assert.doesNotThrow(() => process.kill(sleeper.pid as number, 0));
  assert.equal(await exists(join(dir, ".castra/run/devbox.pid")), false);
  assert.equal(await readFile(`/proc/${sleeper.pid}/cmdline`, "utf8"), "sleep\u0000600\u0000");
});
