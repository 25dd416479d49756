import { dirname } from "node:path";
import { readJsonFile, writeJsonAtomic } from "../host/files.js";
import { argvCarrying } from "../host/process.js";
import { projectPaths } from "../vm/paths.js";

/**
 * run/broker.pid, written by `up`: the process it started, so only that process is ever signalled. Read back
 * (`brokerStatus`), `argv` is what the live process runs once it carries the project's broker command, else
 * empty: a record a stranger planted names no process castra would signal.
 */
export interface BrokerRecord {
  pid: number;
  argv: string[];
  port: number;
  startedAt: string;
}

/** run/broker-state.json, written by the broker: it listens, and which VMs said hello. */
export interface BrokerState {
  pid: number;
  listeningSince: string;
  hellos: Record<string, { at: string; from: string }>;
}

/** Whether our broker process runs, and what it last recorded. */
export interface BrokerStatus {
  state: "running" | "stopped";
  record?: BrokerRecord;
  hellos: BrokerState["hellos"];
}

/** Per VM, as `status` shows it. */
export type VmBrokerState = "waiting" | "reachable" | "offline";

export function readBrokerRecord(stateDir: string): Promise<BrokerRecord | undefined> {
  return readJsonFile<BrokerRecord>(projectPaths({ stateDir }).brokerPidFile);
}

export function readBrokerState(stateDir: string): Promise<BrokerState | undefined> {
  return readJsonFile<BrokerState>(projectPaths({ stateDir }).brokerStateFile);
}

export function writeBrokerState(stateDir: string, state: BrokerState): Promise<void> {
  return writeJsonAtomic(projectPaths({ stateDir }).brokerStateFile, state);
}

export function writeBrokerRecord(stateDir: string, record: BrokerRecord): Promise<void> {
  return writeJsonAtomic(projectPaths({ stateDir }).brokerPidFile, record);
}

/** The broker's command line after castra's own entry: its project directory is what identifies it. */
export function brokerCommand(projectDir: string): string[] {
  return ["broker", "--project-dir", projectDir];
}

export async function brokerStatus(stateDir: string): Promise<BrokerStatus> {
  const found = await readBrokerRecord(stateDir);
  // The project directory is the state directory's parent (`<project>/.castra`).
  const argv = found && (await argvCarrying(found.pid, [[brokerCommand(dirname(stateDir))]]));
  const record = found && { ...found, argv: argv ?? [] };
  const running = Boolean(argv);
  const state = running ? await readBrokerState(stateDir) : undefined;
  // Hellos count only when written by the broker that runs now.
  const hellos = state && state.pid === record?.pid ? state.hellos : {};
  return { state: running ? "running" : "stopped", record, hellos };
}

/**
 * `reachable` once the VM said hello to the running broker since the VM was started; `waiting` before
 * that; `offline` when the broker or the VM does not run.
 */
export function vmBrokerState(
  broker: BrokerStatus,
  vmName: string,
  vmStartedAt: string | undefined,
): VmBrokerState {
  if (broker.state !== "running" || !vmStartedAt) return "offline";
  const hello = broker.hellos[vmName];
  return hello && Date.parse(hello.at) >= Date.parse(vmStartedAt) ? "reachable" : "waiting";
}
