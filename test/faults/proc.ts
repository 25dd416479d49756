import { readdir, readFile, readlink } from "node:fs/promises";
import { pidsRunning } from "../support/processes.js";

/** The kernel's view of processes and sockets: what the fault cases check instead of castra's own words. */

/** QEMU processes castra started for `project` (its `-name guest=castra:<project>:<vm>`). */
export function qemuPidsOf(projectName: string): Promise<number[]> {
  return pidsRunning(`guest=castra:${projectName.replaceAll(",", ",,")}:`);
}

/** Alive and not a zombie. */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  if (stat === undefined) return false;
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
}

export function killQuietly(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, signal);
  } catch {}
}

/** "0100007F" (little-endian hex from /proc/net/tcp) → "127.0.0.1"; IPv6 rows are shown in hex groups. */
function decodeAddress(hex: string): string {
  if (hex.length === 8) {
    const bytes = hex.match(/../g)?.map((b) => Number.parseInt(b, 16)) ?? [];
    return bytes.reverse().join(".");
  }
  // IPv6: four little-endian 32-bit words.
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => (w.match(/../g) ?? []).reverse());
  const groups = [];
  for (let i = 0; i < bytes.length; i += 2) groups.push(`${bytes[i]}${bytes[i + 1]}`.toLowerCase());
  const text = groups.join(":");
  if (text === "0000:0000:0000:0000:0000:0000:0000:0000") return "::";
  if (text.startsWith("0000:0000:0000:0000:0000:ffff:")) {
    const v4 = bytes.slice(12).map((b) => Number.parseInt(b, 16));
    return `::ffff:${v4.join(".")}`;
  }
  return text;
}

/** Addresses with a socket listening on TCP `port`, from /proc/net/tcp and /proc/net/tcp6 (state 0A). */
export async function tcpListeners(port: number): Promise<string[]> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const found: string[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await readFile(table, "utf8").catch(() => "");
    for (const row of text.split("\n").slice(1)) {
      const [, local = "", , state] = row.trim().split(/\s+/);
      const [address = "", portHex] = local.split(":");
      if (portHex === hexPort && state === "0A") found.push(decodeAddress(address));
    }
  }
  return found.sort();
}

/** Every TCP socket `pid` listens on, found through its fds' socket inodes in /proc/net/tcp and tcp6. */
export async function listenersOf(pid: number): Promise<string[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) inodes.add(inode);
  }
  const found: string[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await readFile(table, "utf8").catch(() => "");
    for (const row of text.split("\n").slice(1)) {
      const cols = row.trim().split(/\s+/);
      const [address = "", portHex = ""] = (cols[1] ?? "").split(":");
      if (cols[3] === "0A" && inodes.has(cols[9] ?? ""))
        found.push(`${decodeAddress(address)}:${Number.parseInt(portHex, 16)}`);
    }
  }
  return found.sort();
}
