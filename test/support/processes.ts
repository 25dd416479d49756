import { readdir, readFile } from "node:fs/promises";
import { createServer } from "node:net";

/** Pids whose NUL-separated command line contains `needle` (found by scanning /proc). */
export async function pidsRunning(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(needle)) pids.push(Number(entry));
  }
  return pids;
}

/** Kills (SIGKILL) every QEMU castra started for `projectName`, whatever state a test left it in. */
export async function killProjectQemus(projectName: string): Promise<void> {
  for (const pid of await pidsRunning(`guest=castra:${projectName}:`)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
