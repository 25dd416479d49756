import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { projectAt } from "../../test/support/project.js";
import type { Project } from "../config/model.js";
import { writeJsonAtomic } from "../host/files.js";
import { vmPaths } from "./paths.js";
import { lastRunLines, type VmRunRecord, vmStatus } from "./state.js";

const dir = await mkdtemp(join(tmpdir(), "castra-state-"));
const children: ChildProcess[] = [];
after(async () => {
  for (const child of children) child.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

function project(name: string): Project {
  const rootDir = join(dir, name);
  return projectAt(rootDir, {
    name,
    vms: [
      {
        name: "devbox",
        source: { kind: "path", path: "/b.qcow2" },
        overlay: join(rootDir, "o.qcow2"),
        portForwards: [],
      },
    ],
  });
}

/** A live process that is not QEMU: `sleep`, with the argv /proc will report for it. */
async function sleeper(): Promise<{ pid: number; argv: string[] }> {
  const child = spawn("sleep", ["600"], { stdio: "ignore" });
  children.push(child);
  await new Promise((resolve) => child.once("spawn", resolve));
  return { pid: child.pid as number, argv: ["sleep", "600"] };
}

async function setUp(name: string, record: Partial<VmRunRecord>) {
  const p = project(name);
  const vm = p.vms[0] as Project["vms"][number];
  const paths = vmPaths(p, vm);
  await mkdir(join(p.stateDir, "run"), { recursive: true });
  await mkdir(join(p.stateDir, "logs"), { recursive: true });
  const full: VmRunRecord = {
    pid: 0,
    argv: ["/usr/bin/qemu-system-x86_64", "-name", `guest=castra:${name}:devbox`],
    startedAt: new Date().toISOString(),
    accel: "tcg",
    baseImage: "/b.qcow2",
    overlay: vm.overlay,
    cpus: 1,
    memoryBytes: 1024,
    qmpSocket: paths.qmpSocket,
    serialLog: paths.serialLog,
    qemuLog: paths.qemuLog,
    ...record,
  };
  await writeJsonAtomic(paths.pidFile, full);
  return { p, vm, paths };
}

test("no pid file: stopped", async () => {
  const p = project("none");
  assert.equal((await vmStatus(p, p.vms[0] as Project["vms"][number])).state, "stopped");
});

test("a pid file whose pid is now an unrelated live process (sleep) is stopped, never ours", async () => {
  const other = await sleeper();
  const { p, vm } = await setUp("reused", { pid: other.pid });
  const status = await vmStatus(p, vm);
  assert.equal(status.state, "stopped");
  assert.equal(status.record?.pid, other.pid);
});

test("our process runs: starting until the ready pattern is on the serial log, then running", async () => {
  const ours = await sleeper();
  const { p, vm, paths } = await setUp("live", { ...ours, readyPattern: "login:" });
  assert.equal((await vmStatus(p, vm)).state, "starting");
  await writeFile(paths.serialLog, "Booting...\nWelcome\nguest login: ");
  assert.equal((await vmStatus(p, vm)).state, "running");
  await writeJsonAtomic(paths.stoppingMarker, { pid: process.pid });
  assert.equal((await vmStatus(p, vm)).state, "shutting_down");
});

test("our process is gone without a down: error, with the last lines of its QEMU log", async () => {
  const gone = spawn("true", [], { stdio: "ignore" });
  await new Promise((resolve) => gone.once("exit", resolve));
  const { p, vm, paths } = await setUp("crashed", { pid: gone.pid as number });
  await writeFile(paths.qemuLog, "line 1\nqemu-system-x86_64: terminating on signal 9\n");
  const status = await vmStatus(p, vm);
  assert.equal(status.state, "error");
  assert.deepEqual(status.lastLogLines, ["line 1", "qemu-system-x86_64: terminating on signal 9"]);
});

test("a torn pid file identifies nothing: stopped", async () => {
  const { p, vm, paths } = await setUp("torn", {});
  await writeFile(paths.pidFile, '{"pid": 12');
  assert.equal((await vmStatus(p, vm)).state, "stopped");
});

test("a crashed VM's last lines come from its latest run only, without castra's argv line", async () => {
  const log = join(dir, "qemu-runs.log");
  await writeFile(
    log,
    [
      "2030-01-01T10:00:00.000Z castra: starting vm devbox: /usr/bin/qemu-system-x86_64 -name guest=old",
      "qemu: an old warning from the first run",
      "2030-01-01T11:00:00.000Z castra: starting vm devbox: /usr/bin/qemu-system-x86_64 -name guest=new",
      "qemu-system-x86_64: terminating on signal 9 from pid 1",
      "",
    ].join("\n"),
  );
  assert.deepEqual(await lastRunLines(log), ["qemu-system-x86_64: terminating on signal 9 from pid 1"]);
  assert.deepEqual(await lastRunLines(join(dir, "missing.log")), []);
});
