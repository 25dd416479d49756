import { createSocket } from "node:dgram";
import { readdir, readFile, readlink } from "node:fs/promises";
import { createServer } from "node:net";
import { LaunchError } from "../errors.js";
import { serialLogOf } from "./qemu-args.js";

export type PortProtocol = "tcp" | "udp";

/** Tries to bind `address:port` and releases it at once; resolves with the bind error code, or undefined. */
export function probePort(
  address: string,
  port: number,
  protocol: PortProtocol,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    if (protocol === "udp") {
      const socket = createSocket("udp4");
      socket.once("error", (err: NodeJS.ErrnoException) => {
        socket.close();
        resolve(err.code ?? "EADDRINUSE");
      });
      socket.bind({ address, port, exclusive: true }, () => socket.close(() => resolve(undefined)));
      return;
    }
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "EADDRINUSE"));
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/** A process that holds a port, as far as the OS lets us see it. */
export interface PortHolder {
  pid: number;
  command: string;
  /** When the holder is a castra VM's QEMU: which VM of which project, and where that project lives. */
  castraVm?: CastraQemu;
}

/** What a castra QEMU's command line says about itself. */
export interface CastraQemu {
  project: string;
  vm: string;
  /** The project's directory: its serial log lives in `<dir>/.castra/logs/`. */
  directory?: string;
}

/**
 * Who holds `port` (Linux: the socket's inode in /proc/net/{tcp,udp}[6], then the process whose fd points
 * at it). Undefined when the OS does not tell (another user's process, or not Linux).
 */
export async function findPortHolder(port: number, protocol: PortProtocol): Promise<PortHolder | undefined> {
  const inodes = await socketInodes(port, protocol);
  if (inodes.size === 0) return undefined;
  const pids = (await readdir("/proc").catch(() => [] as string[])).filter((name) => /^\d+$/.test(name));
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (!inode || !inodes.has(inode)) continue;
      const argv = await processArgvOf(pid);
      return {
        pid: Number(pid),
        command: describeArgv(argv) ?? (await commOf(pid)),
        castraVm: castraQemuOf(argv),
      };
    }
  }
  return undefined;
}

/** Inodes of listening (tcp) or bound (udp) sockets on `port`, from the kernel's socket tables. */
async function socketInodes(port: number, protocol: PortProtocol): Promise<Set<string>> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const table of [`/proc/net/${protocol}`, `/proc/net/${protocol}6`]) {
    const text = await readFile(table, "utf8").catch(() => "");
    for (const row of text.split("\n").slice(1)) {
      const fields = row.trim().split(/\s+/);
      const local = fields[1];
      const state = fields[3];
      const inode = fields[9];
      if (!local?.endsWith(`:${hexPort}`) || !inode || inode === "0") continue;
      // TCP_LISTEN is 0A; a bound UDP socket is 07 (TCP_CLOSE).
      if (state === (protocol === "tcp" ? "0A" : "07")) inodes.add(inode);
    }
  }
  return inodes;
}

async function processArgvOf(pid: string): Promise<string[]> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return cmdline.split("\0").filter(Boolean);
}

function describeArgv(argv: string[]): string | undefined {
  return argv.length > 0 ? argv.join(" ").slice(0, 120) : undefined;
}

async function commOf(pid: string): Promise<string> {
  return (await readFile(`/proc/${pid}/comm`, "utf8").catch(() => "?")).trim();
}

/** `-name guest=castra:<project>:<vm>` and the serial log's path: a castra QEMU tells whose it is. */
export function castraQemuOf(argv: readonly string[]): CastraQemu | undefined {
  const name = argv[argv.indexOf("-name") + 1] ?? "";
  // QEMU option values double their commas; the VM name has none, the project's may.
  const match = /^guest=castra:(.*):([a-z0-9][a-z0-9_-]*)$/.exec(name.replaceAll(",,", ","));
  if (!match) return undefined;
  const directory = serialLogOf(argv)?.match(/^(.*)\/\.castra\/logs\/[^/]+$/)?.[1];
  return { project: match[1] as string, vm: match[2] as string, directory };
}

/**
 * A TCP port that is free on `address` right now and not in `avoid` (ports the project claims for later):
 * the kernel picks it, castra releases it, and QEMU binds it a moment later.
 */
export async function pickFreePort(address: string, avoid: ReadonlySet<number>): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once("error", (err) =>
        reject(
          new LaunchError(`Cannot find a free port on ${address} for SSH`, {
            detail: err.message,
            hint: "check that the loopback interface is up (ip addr show lo), then run `castra up` again",
            cause: err,
          }),
        ),
      );
      server.listen({ host: address, port: 0, exclusive: true }, () => {
        const bound = server.address();
        const chosen = typeof bound === "object" && bound ? bound.port : 0;
        server.close(() => resolve(chosen));
      });
    });
    if (port > 0 && !avoid.has(port)) return port;
  }
  throw new LaunchError(`Cannot find a free port on ${address} for SSH`, {
    hint: "close some programs listening on 127.0.0.1, or declare a forward to guest port 22 in castra.toml",
  });
}
