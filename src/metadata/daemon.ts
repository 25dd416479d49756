import { closeSync, writeSync } from "node:fs";
import { chmod, readFile, rm, stat } from "node:fs/promises";
import type { Server } from "node:net";
import { CastraError, ExitCode } from "../errors.js";
import { readJsonFile } from "../host/files.js";
import { runsArgv } from "../host/process.js";
import { METADATA_BOUNDS } from "./bounds.js";
import { type ResponderConfig, readResponderConfig } from "./config.js";
import { openMetadataLog } from "./log.js";
import { createMetadataServer } from "./server.js";

/** The hidden command `up` starts, detached, once per VM that serves metadata. */
export const METADATA_SERVER_COMMAND = "__metadata-server";

/** The descriptor on which the server tells the `up` that started it that it listens. */
export const READY_FD = 3;

/**
 * `castra __metadata-server <config>`: one VM's metadata server. Reads its configuration (and removes the file:
 * the token secret then lives only in this process), reads the user-data once, listens on the VM's socket,
 * and serves until SIGTERM or until the VM's QEMU is gone. Its stdout and stderr are the metadata log.
 */
export async function runMetadataServer(configPath: string): Promise<number> {
  let config: ResponderConfig;
  let userData: Buffer | undefined;
  try {
    config = await readResponderConfig(configPath);
    userData = await readUserData(config.userDataPath);
  } catch (err) {
    return reportStartFailure(err);
  }
  await rm(configPath, { force: true });
  const log = openMetadataLog(config.logPath);
  const service = createMetadataServer({ config, userData }, log);
  let socketIno: number;
  try {
    socketIno = await listenOn(service.server, config.socketPath);
  } catch (err) {
    return reportStartFailure(err);
  }
  const b = METADATA_BOUNDS;
  log.note(
    `metadata server listening on ${config.socketPath} (pid ${process.pid}; at most ${b.maxConnections} ` +
      `connections, ${b.maxHeaderBytes + b.maxBodyBytes} bytes a request, read ${b.readTimeoutMs} ms, write ${b.writeTimeoutMs} ms)`,
  );
  announceReady();

  const why = await Promise.race([
    signalled("SIGTERM"),
    signalled("SIGINT"),
    qemuGone(config.vmPidFile, QEMU_START_GRACE_MS),
  ]);
  log.note(`metadata server stopping: ${why}`);
  await service.close();
  // A new server of the same VM may already listen on this path; only our own socket is removed.
  if ((await stat(config.socketPath).catch(() => undefined))?.ino === socketIno)
    await rm(config.socketPath, { force: true });
  await log.close();
  return ExitCode.ok;
}

/** How long the server waits for its QEMU to appear: `up` starts it right before launching QEMU. */
const QEMU_START_GRACE_MS = 60_000;
const WATCH_INTERVAL_MS = 1000;

async function readUserData(path: string | undefined): Promise<Buffer | undefined> {
  if (path === undefined) return undefined;
  try {
    return await readFile(path);
  } catch (err) {
    // `up` checked that it exists; one removed since is served as none, as EC2 does for an instance without.
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Listens on a fresh socket (a stale one is removed first), private to the user; resolves its inode. */
async function listenOn(server: Server, socketPath: string): Promise<number> {
  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  await chmod(socketPath, 0o600);
  return (await stat(socketPath)).ino;
}

/** Tells the `up` that started this server that it listens; nothing to tell when run by hand. */
function announceReady(): void {
  try {
    writeSync(READY_FD, "ready\n");
    closeSync(READY_FD);
  } catch {}
}

function signalled(signal: NodeJS.Signals): Promise<string> {
  return new Promise((resolve) => process.once(signal, () => resolve(signal)));
}

/**
 * Resolves once the VM's QEMU is gone: the run record's process no longer runs its argv, the record was removed
 * or replaced, or no QEMU appeared within the grace period. So a crashed VM never leaves its server behind.
 */
function qemuGone(pidFile: string, graceMs: number): Promise<string> {
  const began = Date.now();
  let watched: { pid: number; argv: string[] } | undefined;
  return new Promise((resolve) => {
    let busy = false;
    const timer = setInterval(async () => {
      if (busy) return;
      busy = true;
      const record = await readJsonFile<{ pid: number; argv: string[] }>(pidFile);
      const live = record && Array.isArray(record.argv) && (await runsArgv(record.pid, record.argv));
      busy = false;
      const gone = watched ? record?.pid !== watched.pid || !live : !live && Date.now() - began > graceMs;
      if (!watched && live && record) watched = record;
      if (!gone) return;
      clearInterval(timer);
      resolve(watched ? `QEMU (pid ${watched.pid}) is gone` : `no QEMU started within ${graceMs / 1000} s`);
    }, WATCH_INTERVAL_MS);
    // The listening server keeps the process alive; once it closes, this watch must not.
    timer.unref();
  });
}

/** Before it listens the server has no log of its own: stderr is the metadata log, where `up` reads it. */
function reportStartFailure(err: unknown): number {
  const lines =
    err instanceof CastraError
      ? [err.headline, err.detail].filter(Boolean)
      : [`metadata server failed to start: ${(err as Error).message}`];
  process.stderr.write(`${new Date().toISOString()} ${lines.join(": ")}\n`);
  return err instanceof CastraError ? err.exitCode : ExitCode.software;
}
