import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { projectAt } from "../../test/support/project.js";
import type { Project } from "../config/model.js";
import { writeJsonAtomic } from "../host/files.js";
import { vmPaths } from "./paths.js";
import { qemuIdentities } from "./qemu-args.js";
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

/** A live process with this argv after `node -e <idle> --`; with no options, just an idle node. */
async function live(options: string[] = []): Promise<{ pid: number; argv: string[] }> {
  const argv = [process.execPath, "-e", "setInterval(() => {}, 1 << 30)", "--", ...options];
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: "ignore" });
  children.push(child);
  await new Promise((resolve) => child.once("spawn", resolve));
  return { pid: child.pid as number, argv };
}

/** A live process that is not QEMU: `sleep`, with the argv /proc will report for it. */
async function sleeper(): Promise<{ pid: number; argv: string[] }> {
  const child = spawn("sleep", ["600"], { stdio: "ignore" });
  children.push(child);
  await new Promise((resolve) => child.once("spawn", resolve));
  return { pid: child.pid as number, argv: ["sleep", "600"] };
}

/** A stand-in for the project's QEMU: it carries the identity `buildQemuArgs` gives the VM, and `extra`. */
function ourQemu(name: string, extra: string[] = []) {
  const p = project(name);
  const paths = vmPaths(p, p.vms[0] as Project["vms"][number]);
  const [current] = qemuIdentities(name, "devbox", paths);
  return live([...(current ?? []).flat(), ...extra]);
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

test("a planted record is believed only as far as the process and the configuration confirm it", async () => {
  const other = await sleeper();
  // It names the sleep's own argv, and paths outside the project.
  const { p, vm, paths } = await setUp("planted", {
    ...other,
    qmpSocket: "/etc/important",
    qemuLog: "/etc/shadow",
    serialLog: "/etc/shadow",
  });
  const status = await vmStatus(p, vm);
  assert.equal(status.state, "stopped");
  assert.deepEqual(status.record?.argv, [], "no argv: nothing would ever be signalled for it");
  assert.equal(status.record?.qmpSocket, paths.qmpSocket);
  assert.equal(status.record?.qemuLog, paths.qemuLog);
  assert.equal(status.record?.serialLog, paths.serialLog);
  // Another project's or another VM's QEMU is not this VM's either.
  const elsewhere = await ourQemu("elsewhere");
  const { p: q, vm: w } = await setUp("mistaken", elsewhere);
  assert.equal((await vmStatus(q, w)).state, "stopped");
});

test("the SSH endpoint counts only when the QEMU forwards it", async () => {
  const ssh = { host: "127.0.0.1", port: 40222, user: "alpine", automatic: true };
  const forwarding = await ourQemu("ssh-ok", ["-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:40222-:22"]);
  const ok = await setUp("ssh-ok", { ...forwarding, ssh });
  assert.deepEqual((await vmStatus(ok.p, ok.vm)).record?.ssh, ssh);
  const other = await ourQemu("ssh-other", ["-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:40223-:22"]);
  const wrong = await setUp("ssh-other", { ...other, ssh });
  const status = await vmStatus(wrong.p, wrong.vm);
  assert.equal(status.state, "running");
  assert.equal(status.record?.ssh, undefined);
});

test("our process runs: starting until the ready pattern is on the serial log, then running", async () => {
  const ours = await ourQemu("live");
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
  // A log named by the record is never read: the configuration's is.
  const planted = await readFile(paths.pidFile, "utf8");
  await writeFile(paths.pidFile, planted.replace(paths.qemuLog, "/etc/passwd"));
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
