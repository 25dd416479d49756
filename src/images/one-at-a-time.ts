/** Keys busy in this process: a lock file records a pid, so it cannot tell two callers in one process apart. */
const busy = new Map<string, Promise<unknown>>();

/** Runs `run` after every earlier call with the same key in this process has settled. */
export async function oneAtATime<T>(key: string, run: () => Promise<T>): Promise<T> {
  const previous = busy.get(key) ?? Promise.resolve();
  const mine = previous.catch(() => {}).then(run);
  busy.set(key, mine);
  try {
    return await mine;
  } finally {
    if (busy.get(key) === mine) busy.delete(key);
  }
}
