import type { Project } from "../config/model.js";
import { InterruptedError } from "../errors.js";
import { acquireLock, type Lock, type LockHolder } from "../host/lock.js";
import { projectPaths } from "../vm/paths.js";
import type { ProjectEvent } from "./events.js";
import type { VmHost } from "./vm-host.js";

/**
 * The project lock that serialises `up` and `down` (`.castra/run/project.lock`); a second caller waits
 * for the holder, then exit 75 on timeout. Ctrl-C while waiting is an InterruptedError (130).
 */
export async function lockProject(
  project: Pick<Project, "stateDir">,
  purpose: string,
  options: { signal: AbortSignal; onWait: (holder: LockHolder) => void },
): Promise<Lock> {
  try {
    return await acquireLock(projectPaths(project).lockFile, { purpose, ...options });
  } catch (err) {
    if (options.signal.aborted) throw new InterruptedError("Interrupted while waiting for the project lock");
    throw err;
  }
}

/** Runs `work` under the project lock (a wait for another castra is reported), releasing it however `work` ends. */
export async function underProjectLock<T>(
  project: Project,
  host: Pick<VmHost, "ensureStateDirs" | "lockProject">,
  purpose: string,
  options: { signal: AbortSignal; onEvent: (event: ProjectEvent) => void },
  work: () => Promise<T>,
): Promise<T> {
  await host.ensureStateDirs(project);
  const lock = await host.lockProject(project, purpose, {
    signal: options.signal,
    onWait: (holder) => options.onEvent({ type: "lock-wait", holder }),
  });
  try {
    return await work();
  } finally {
    await lock.release();
  }
}
