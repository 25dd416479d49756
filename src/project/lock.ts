import type { Project } from "../config/model.js";
import { InterruptedError } from "../errors.js";
import { acquireLock, type Lock, type LockHolder } from "../host/lock.js";
import { projectPaths } from "../vm/paths.js";

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
