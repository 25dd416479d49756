import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { LaunchError } from "../errors.js";
import { readTailLines } from "../host/log-tail.js";
import { openPrivate } from "../host/private-files.js";
import { signalIfOurs, sleep, waitForExit } from "../host/process.js";
import { projectPaths } from "../vm/paths.js";
import { type BrokerRecord, brokerCommand, readBrokerState, writeBrokerRecord } from "./state.js";

const START_TIMEOUT_MS = 15_000;

export interface BrokerLaunch {
  stateDir: string;
  projectDir: string;
  /** The port guests connect to (QEMU relays it to the broker's socket); recorded for `status`. */
  port: number;
  /** How to run castra itself: node, its flags and the CLI entry script. */
  command: { execPath: string; execArgv: string[]; entry: string };
}

/**
 * Starts the hidden `castra broker` detached, records it in run/broker.pid and waits until it listens on
 * its unix socket (`run/broker.sock`): no host port, so only this project's guests reach it, through QEMU.
 */
export async function startBroker(launch: BrokerLaunch): Promise<BrokerRecord> {
  const paths = projectPaths({ stateDir: launch.stateDir });
  const args = [...launch.command.execArgv, launch.command.entry, ...brokerCommand(launch.projectDir)];
  const log = await openPrivate(paths.brokerLog, "append", "open the broker log");
  const child = spawn(launch.command.execPath, args, { detached: true, stdio: ["ignore", log.fd, log.fd] });
  await log.close();
  let exited = false;
  child.on("exit", () => {
    exited = true;
  });
  child.on("error", () => {
    exited = true;
  });
  child.unref();
  const record: BrokerRecord = {
    pid: child.pid ?? -1,
    argv: [launch.command.execPath, ...args],
    port: launch.port,
    startedAt: new Date().toISOString(),
  };
  if (record.pid > 0) await writeBrokerRecord(launch.stateDir, record);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!exited && Date.now() < deadline) {
    if ((await readBrokerState(launch.stateDir))?.pid === record.pid) return record;
    await sleep(50);
  }
  if (!exited) child.kill("SIGKILL");
  await rm(paths.brokerPidFile, { force: true });
  const lines = await readTailLines(paths.brokerLog, 8).catch(() => []);
  throw new LaunchError(`The host broker did not start on ${paths.brokerSocket}`, {
    detail:
      lines.length > 0
        ? `Last lines of ${paths.brokerLog}:\n${lines.map((l) => `  ${l}`).join("\n")}`
        : undefined,
    hint: `check ${paths.brokerLog}, then run \`castra up\` again`,
  });
}

/** Stops our broker (SIGTERM, then SIGKILL) and removes its runtime files; true when one was running. */
export async function stopBroker(stateDir: string, record: BrokerRecord | undefined): Promise<boolean> {
  const paths = projectPaths({ stateDir });
  let wasRunning = false;
  if (record) {
    wasRunning = await signalIfOurs(record.pid, record.argv, "SIGTERM");
    if (wasRunning && !(await waitForExit(record.pid, record.argv, 5000))) {
      await signalIfOurs(record.pid, record.argv, "SIGKILL");
      await waitForExit(record.pid, record.argv, 5000);
    }
  }
  const files = [paths.brokerPidFile, paths.brokerStateFile, paths.brokerSocket];
  await Promise.all(files.map((f) => rm(f, { force: true })));
  return wasRunning;
}
