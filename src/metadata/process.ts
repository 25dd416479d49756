import { type ChildProcess, spawn } from "node:child_process";
import { open, rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import { fsError, LaunchError } from "../errors.js";
import { readJsonFile, writeJsonAtomic } from "../host/files.js";
import { readTailLines } from "../host/log-tail.js";
import { OPEN_PRIVATE } from "../host/private-files.js";
import { signalIfOurs, waitForExit } from "../host/process.js";
import { METADATA_SERVER_COMMAND, READY_FD } from "./daemon.js";

/** The files of one VM's metadata server (docs/design.md, "Project state"). */
export interface MetadataServerFiles {
  /** Written by `up`, read (and removed) by the server as it starts. */
  config: string;
  socket: string;
  /** The server's run record, written by `up`. */
  pidFile: string;
  /** Where the server logs; its stdout and stderr go there too. */
  log: string;
}

/** `run/<vm>-metadata.pid`: the process `up` started, so only that process is ever signalled. */
export interface MetadataServerRecord {
  pid: number;
  argv: string[];
  startedAt: string;
  socket: string;
}

export interface MetadataServerLaunch {
  vmName: string;
  files: MetadataServerFiles;
  /** How to run castra itself: node, its flags and the CLI entry script. */
  command: { execPath: string; execArgv: string[]; entry: string };
}

export interface MetadataServerHandle {
  record: MetadataServerRecord;
  /** Settles once the server listens; rejects (exit 70) when it exited or hung instead. */
  ready(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;
const SIGTERM_GRACE_MS = 3_000;

/**
 * Starts the VM's metadata server detached and records it; a server left behind by an earlier run is stopped
 * first. Returns without waiting, so the server starts while QEMU does: `ready()` waits for it to listen.
 */
export async function startMetadataServer(launch: MetadataServerLaunch): Promise<MetadataServerHandle> {
  const { files, command } = launch;
  await endServer(files);
  let log: Awaited<ReturnType<typeof open>>;
  try {
    log = await open(files.log, OPEN_PRIVATE.append, 0o600);
  } catch (err) {
    throw fsError(err, "open the metadata log", files.log);
  }
  const args = [...command.execArgv, command.entry, METADATA_SERVER_COMMAND, files.config];
  const stdio = ["ignore", log.fd, log.fd, "pipe"] as const;
  let child: ChildProcess;
  try {
    child = spawn(command.execPath, args, { detached: true, stdio: [...stdio] });
  } finally {
    await log.close();
  }
  const readiness = untilReady(child, launch);
  const record: MetadataServerRecord = {
    pid: child.pid ?? -1,
    argv: [command.execPath, ...args],
    startedAt: new Date().toISOString(),
    socket: files.socket,
  };
  if (record.pid > 0) await writeJsonAtomic(files.pidFile, record);
  return {
    record,
    ready: async () => {
      const failure = await readiness;
      if (failure) throw failure;
    },
  };
}

/** Stops the VM's metadata server if it runs and removes its files; true when one was running. */
export async function stopMetadataServer(files: MetadataServerFiles): Promise<boolean> {
  const wasRunning = await endServer(files);
  await rm(files.config, { force: true });
  return wasRunning;
}

/** SIGTERM, then SIGKILL, to the recorded server only while it runs its recorded argv; removes its pid file and socket. */
async function endServer(files: MetadataServerFiles): Promise<boolean> {
  const record = await readJsonFile<MetadataServerRecord>(files.pidFile);
  let wasRunning = false;
  if (record && Array.isArray(record.argv)) {
    wasRunning = await signalIfOurs(record.pid, record.argv, "SIGTERM");
    if (wasRunning && !(await waitForExit(record.pid, record.argv, SIGTERM_GRACE_MS))) {
      await signalIfOurs(record.pid, record.argv, "SIGKILL");
      await waitForExit(record.pid, record.argv, SIGTERM_GRACE_MS);
    }
  }
  await Promise.all([rm(files.pidFile, { force: true }), rm(files.socket, { force: true })]);
  return wasRunning;
}

/** Resolves undefined once the server says it listens, or the error to report when it exits or hangs first. */
function untilReady(child: ChildProcess, launch: MetadataServerLaunch): Promise<LaunchError | undefined> {
  const pipe = child.stdio[READY_FD] as Readable;
  return new Promise<string | undefined>((resolve) => {
    let said = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve(`it did not listen within ${READY_TIMEOUT_MS / 1000} s`);
    }, READY_TIMEOUT_MS);
    const settle = (why: string | undefined) => {
      clearTimeout(timer);
      resolve(why);
    };
    pipe.on("data", (chunk: Buffer) => {
      said += chunk.toString();
      if (said.includes("ready\n")) settle(undefined);
    });
    pipe.on("error", () => {});
    child.once("error", (err) => settle(`it could not be run: ${err.message}`));
    child.once("exit", (code, signal) => settle(`it exited (${signal ?? `status ${code}`}) while starting`));
  }).then(async (why) => {
    pipe.destroy();
    child.unref();
    if (why === undefined) return undefined;
    const lines = await readTailLines(launch.files.log, 8).catch(() => []);
    return new LaunchError(`The metadata server of vm ${launch.vmName} did not start: ${why}`, {
      detail:
        lines.length > 0
          ? `Last lines of ${launch.files.log}:\n${lines.map((l) => `  ${l}`).join("\n")}`
          : undefined,
      hint: `read ${launch.files.log} (or \`castra logs\`), fix what it reports, then run \`castra up\` again`,
    });
  });
}
