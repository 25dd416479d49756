import { open, readFile, rm, stat } from "node:fs/promises";
import { fsError, LockTimeoutError } from "../errors.js";
import { isAlive, processArgv, runsArgv } from "./process.js";

export interface LockHolder {
  pid: number;
  purpose: string;
  since: string;
  /** The holder's command line, so a pid reused by another program is not taken for the holder. */
  argv?: string[];
}

export interface LockOptions {
  /** What the lock protects, for the waiting message ("project", "image alpine-minimal@v1"). */
  purpose: string;
  /** How long to wait for another holder, in milliseconds. */
  timeoutMs?: number;
  /** Called once when the lock is held by another live process and we start waiting. */
  onWait?: (holder: LockHolder) => void;
  signal?: AbortSignal;
}

export interface Lock {
  release(): Promise<void>;
}

const POLL_MS = 100;

async function readHolder(path: string): Promise<LockHolder | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, "utf8")) as Partial<LockHolder>;
    return typeof parsed.pid === "number" ? (parsed as LockHolder) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An exclusive lock file recording its holder's pid. A holder that died is taken over;
 * a live one is waited for until `timeoutMs`, then LockTimeoutError (exit 75).
 */
export async function acquireLock(path: string, options: LockOptions): Promise<Lock> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  const me: LockHolder = {
    pid: process.pid,
    purpose: options.purpose,
    since: new Date().toISOString(),
    argv: await processArgv(process.pid),
  };
  let announced = false;
  for (;;) {
    try {
      const handle = await open(path, "wx", 0o600);
      await handle.writeFile(JSON.stringify(me));
      await handle.close();
      return { release: () => rm(path, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST")
        throw fsError(err, `create the lock ${path}`, path);
    }
    const holder = await readHolder(path);
    if (holder && holder.pid !== process.pid && (await holderRuns(holder))) {
      if (!announced) options.onWait?.(holder);
      announced = true;
      if (Date.now() >= deadline) {
        throw new LockTimeoutError(
          `Another castra (pid ${holder.pid}) still holds the ${options.purpose} lock`,
          {
            detail: `${path} has been held since ${holder.since} by: ${holder.purpose}`,
            hint: `wait for pid ${holder.pid} to finish, or stop it (kill ${holder.pid}) and run the command again`,
          },
        );
      }
    } else if (holder || Date.now() - (await mtimeMs(path)) > 2000) {
      // The holder died (or wrote nothing for 2 s): its lock is stale.
      await removeStale(path, holder);
      continue;
    }
    if (options.signal?.aborted) throw options.signal.reason;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The same identity check as a VM's: the recorded pid still runs the recorded command line. */
function holderRuns(holder: LockHolder): Promise<boolean> {
  return holder.argv ? runsArgv(holder.pid, holder.argv) : isAlive(holder.pid);
}

async function mtimeMs(path: string): Promise<number> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return 0;
  }
}

/** Removes a stale lock under a short-lived guard, so two waiters never both take it over. */
async function removeStale(path: string, stale: LockHolder | undefined): Promise<void> {
  const guard = `${path}.takeover`;
  try {
    await (await open(guard, "wx", 0o600)).close();
  } catch {
    // Another waiter is taking over; a guard older than 5 s belongs to one that died mid-way.
    if (Date.now() - (await mtimeMs(guard)) > 5000) await rm(guard, { force: true });
    return;
  }
  try {
    const current = await readHolder(path);
    if (current?.pid === stale?.pid && current?.since === stale?.since) await rm(path, { force: true });
  } finally {
    await rm(guard, { force: true });
  }
}
