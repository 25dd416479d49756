import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { type AddressInfo, connect, createServer, type NetConnectOpts } from "node:net";
import { dirname, join } from "node:path";
import type { MetadataBounds } from "../../src/metadata/bounds.js";
import type { ResponderConfig } from "../../src/metadata/config.js";
import type { MetadataContent } from "../../src/metadata/ec2.js";
import { openMetadataLog } from "../../src/metadata/log.js";
import { createMetadataServer, type MetadataServer } from "../../src/metadata/server.js";

export const TEST_KEYS = [
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0castraprojectkey castra@demo",
  "ssh-rsa AAAAB3NzaC1yc2E user@laptop",
];

/** A responder configuration for `dir`, as `up` would write it. */
export function testResponderConfig(dir: string, overrides: Partial<ResponderConfig> = {}): ResponderConfig {
  return {
    flavour: "ec2",
    instanceId: "i-0123456789abcdef0",
    hostname: "devbox",
    localIpv4: "169.254.0.15",
    mac: "52:54:00:12:34:56",
    publicKeys: TEST_KEYS,
    secret: "test-secret",
    logPath: join(dir, "logs", "devbox-metadata.log"),
    socketPath: join(dir, "devbox-metadata.sock"),
    vmPidFile: join(dir, "devbox.pid"),
    ...overrides,
  };
}

export interface TestService extends MetadataServer {
  socketPath: string;
  logPath: string;
}

/** A metadata server on a unix socket in `dir`, as the daemon runs it, with its log in `dir/logs`. */
export async function startTestService(
  dir: string,
  content: MetadataContent,
  bounds?: MetadataBounds,
  name = "devbox",
): Promise<TestService> {
  const socketPath = join(dir, `${name}-${process.pid}-${Math.random().toString(36).slice(2)}.sock`);
  await mkdir(dirname(content.config.logPath), { recursive: true });
  const log = openMetadataLog(content.config.logPath);
  const service = createMetadataServer(content, log, { bounds });
  await new Promise<void>((resolve) => service.server.listen(socketPath, resolve));
  return {
    ...service,
    socketPath,
    logPath: content.config.logPath,
    close: async () => {
      await service.close();
      await log.close();
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
  /** Every byte received, head included. */
  raw: Buffer;
}

/**
 * Sends bytes exactly as given (like `printf ... | nc`) and reads until the other side closes. `to` is a unix
 * socket path or a TCP port on 127.0.0.1.
 */
export function exchange(
  to: string | number,
  request: string | Buffer,
  options: { halfClose?: boolean } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const target: NetConnectOpts = typeof to === "string" ? { path: to } : { port: to, host: "127.0.0.1" };
    const socket = connect(target);
    const chunks: Buffer[] = [];
    socket.on("data", (c) => chunks.push(c));
    socket.on("error", reject);
    socket.on("close", () => resolve(parseResponse(Buffer.concat(chunks))));
    // nc does not half-close after sending, so by default the request must be answered with the socket open.
    socket.write(request);
    if (options.halfClose) socket.end();
  });
}

export function parseResponse(raw: Buffer): RawResponse {
  const split = raw.indexOf("\r\n\r\n");
  assert.ok(split > 0, `no response head in ${JSON.stringify(raw.toString("latin1"))}`);
  const [statusLine = "", ...lines] = raw.subarray(0, split).toString("latin1").split("\r\n");
  const headers = new Map(
    lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
  );
  return { status: Number(statusLine.split(" ")[1]), headers, body: raw.subarray(split + 4), raw };
}

export const get = (path: string, headers: Record<string, string> = {}, version = "1.0") =>
  `GET ${path} HTTP/${version}\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("")}\r\n`;

export const putToken = (ttl?: string) =>
  `PUT /latest/api/token HTTP/1.0\r\n${ttl === undefined ? "" : `X-aws-ec2-metadata-token-ttl-seconds: ${ttl}\r\n`}\r\n`;

/** Polls `probe` until it returns a value. */
export async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    assert.ok(Date.now() < deadline, "timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The log's lines once one matches `pattern` (the server writes each line just after answering). */
export function logOnceItHas(logPath: string, pattern: RegExp, timeoutMs = 5000): Promise<string> {
  return waitFor(async () => {
    const text = await readFile(logPath, "utf8").catch(() => "");
    return pattern.test(text) ? text : undefined;
  }, timeoutMs);
}

export interface GuestfwdBridge {
  port: number;
  /** Every process started, with when it exited (undefined while it runs). */
  spawned: { pid: number; exitedAt?: number; startedAt: number }[];
  close(): Promise<void>;
}

/**
 * What libslirp does for `guestfwd=...-cmd:`: each connection to the returned port on 127.0.0.1 runs `argv`
 * without a shell, with the connection as its stdin, stdout and stderr.
 */
export async function startGuestfwdBridge(argv: string[]): Promise<GuestfwdBridge> {
  const [file = "", ...args] = argv;
  const spawned: GuestfwdBridge["spawned"] = [];
  const children = new Set<ChildProcess>();
  const server = createServer({ pauseOnConnect: true }, (socket) => {
    const child = spawn(file, args, { stdio: [socket, socket, socket] });
    const entry: GuestfwdBridge["spawned"][number] = { pid: child.pid ?? -1, startedAt: performance.now() };
    spawned.push(entry);
    children.add(child);
    child.on("exit", () => {
      entry.exitedAt = performance.now();
      children.delete(child);
    });
    // The child holds the connection now; this process lets go of its copy, as libslirp does.
    child.on("spawn", () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    spawned,
    close: async () => {
      for (const child of children) child.kill("SIGKILL");
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
