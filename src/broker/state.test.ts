import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { brokerCommand, brokerStatus, writeBrokerRecord } from "./state.js";

const root = await mkdtemp(join(tmpdir(), "castra-broker-state-"));
const children: ChildProcess[] = [];
after(async () => {
  for (const child of children) child.kill("SIGKILL");
  await rm(root, { recursive: true, force: true });
});

async function running(command: string, args: string[]): Promise<{ pid: number; argv: string[] }> {
  const child = spawn(command, args, { stdio: "ignore" });
  children.push(child);
  await new Promise((resolve) => child.once("spawn", resolve));
  return { pid: child.pid as number, argv: [command, ...args] };
}

async function project(name: string): Promise<string> {
  const stateDir = join(root, name, ".castra");
  await mkdir(join(stateDir, "run"), { recursive: true });
  return stateDir;
}

const idle = ["-e", "setInterval(() => {}, 1 << 30)", "--"];

test("the broker counts as running only while its process carries this project's broker command", async () => {
  const stateDir = await project("ours");
  const broker = await running(process.execPath, [...idle, ...brokerCommand(join(root, "ours"))]);
  await writeBrokerRecord(stateDir, { ...broker, port: 7070, startedAt: new Date().toISOString() });
  const status = await brokerStatus(stateDir);
  assert.equal(status.state, "running");
  assert.equal(status.record?.pid, broker.pid);
});

test("a planted record naming another process (its own argv recorded) is stopped and names no argv", async () => {
  const stateDir = await project("planted");
  const sleeper = await running("sleep", ["600"]);
  await writeBrokerRecord(stateDir, { ...sleeper, port: 7070, startedAt: new Date().toISOString() });
  const status = await brokerStatus(stateDir);
  assert.equal(status.state, "stopped");
  assert.deepEqual(status.record?.argv, []);
  // Another project's broker is not this one's either.
  const other = await running(process.execPath, [...idle, ...brokerCommand(join(root, "ours"))]);
  await writeBrokerRecord(stateDir, { ...other, port: 7070, startedAt: new Date().toISOString() });
  assert.equal((await brokerStatus(stateDir)).state, "stopped");
});
