import type { ChildProcess } from "node:child_process";
import { connect, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { firstLine, startDetached, stop } from "./procs.js";

/**
 * A static file server on 127.0.0.1 in its own process, shared by castra and curl, so both download from
 * exactly the same server and neither competes with it for the bench's event loop.
 * `python3 -m http.server` is the default (it was the fastest of python3, busybox httpd and a Node
 * createReadStream server in our measurements); BENCH_SERVER=busybox picks busybox httpd.
 */
export interface StaticServer {
  origin: string;
  description: string;
  close(): Promise<void>;
}

export async function startStaticServer(dir: string): Promise<StaticServer> {
  const port = await freePort();
  const kind = process.env.BENCH_SERVER === "busybox" ? "busybox" : "python";
  const argv =
    kind === "busybox"
      ? ["busybox", "httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", dir]
      : [await python(), "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, String(port)];
  const child = startDetached(argv);
  await waitForPort(port, child);
  return {
    origin: `http://127.0.0.1:${port}`,
    description: kind === "busybox" ? "busybox httpd" : "python3 -m http.server",
    close: () => stop(child),
  };
}

/** The interpreter itself, not a wrapper (pyenv's shim) whose pid would not be the server's. */
async function python(): Promise<string> {
  const line = await firstLine(["python3", "-c", "import sys; print(sys.executable)"]);
  if (!line.startsWith("/"))
    throw new Error("python3 is needed for the file server (or set BENCH_SERVER=busybox)");
  return line;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`the file server exited (${child.spawnargs.join(" ")})`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (open) return;
    await sleep(50);
  }
  throw new Error(`the file server did not listen on 127.0.0.1:${port}`);
}
