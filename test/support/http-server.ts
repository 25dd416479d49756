import { createReadStream, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type ServerOptions as TlsOptions } from "node:https";
import type { AddressInfo, Socket } from "node:net";

/** What the server saw, so tests can count GETs and check Range headers. */
export interface RecordedRequest {
  method: string;
  path: string;
  range?: string;
  status: number;
  /** When the request arrived (Date.now()), to measure retry backoff. */
  at: number;
}

/** Misbehaviour switched on per path. */
export interface Fault {
  /** Close the connection after this many body bytes, for the next `times` requests. */
  dropAfter?: { bytes: number; times: number };
  /** Always answer 200 with the whole file, as servers without Range support do. */
  ignoreRange?: boolean;
  /** Send this many body bytes, then nothing more while keeping the connection open. */
  stallAfter?: number;
  /** Answer with this status (no body), for the next `times` requests (forever when absent). */
  status?: { code: number; times?: number };
  /** Served in place of the real content: wrong bytes of the same length, an HTML page... */
  body?: Buffer;
  /** Wait this long before answering (a slow server, to make concurrent clients overlap). */
  delayMs?: number;
  /** Send the body at about this rate, so a client can be interrupted while bytes are flowing. */
  bytesPerSecond?: number;
  /** Answer with this Content-Type and no Content-Length (chunked), as a captive portal's HTML page does. */
  page?: { contentType: string };
  /** Send the body chunked, then the last chunk and one trailer field every `everyMs`, never ending the trailers. */
  trailerDrip?: { everyMs: number };
}

type Content = Buffer | { file: string };

/** A real HTTP (or, given a key and certificate, HTTPS) server on 127.0.0.1 serving files from a map, with Range support and switchable faults. */
export class FixtureServer {
  readonly requests: RecordedRequest[] = [];
  private readonly contents = new Map<string, Content>();
  private readonly faults = new Map<string, Fault>();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly scheme: "http" | "https",
  ) {
    server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  static async start(tls?: TlsOptions): Promise<FixtureServer> {
    const server = tls ? createHttpsServer(tls) : createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const fixture = new FixtureServer(server, (server.address() as AddressInfo).port, tls ? "https" : "http");
    server.on("request", (req, res) => {
      fixture.handle(req, res).catch(() => res.destroy());
    });
    return fixture;
  }

  get origin(): string {
    return `${this.scheme}://127.0.0.1:${this.port}`;
  }

  url(path: string): string {
    return `${this.origin}${path}`;
  }

  serve(path: string, content: Content): void {
    this.contents.set(path, content);
  }

  /** Sets (or with undefined, clears) the fault for `path`. */
  fault(path: string, fault: Fault | undefined): void {
    if (fault) this.faults.set(path, { ...fault, dropAfter: fault.dropAfter && { ...fault.dropAfter } });
    else this.faults.delete(path);
  }

  gets(path?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.method === "GET" && (path === undefined || r.path === path));
  }

  /** Stops listening and cuts every open connection, stalled ones included. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", this.origin).pathname;
    const record: RecordedRequest = {
      method: req.method ?? "",
      path,
      range: req.headers.range,
      status: 0,
      at: Date.now(),
    };
    this.requests.push(record);
    const reply = (status: number, headers: Record<string, string | number> = {}) => {
      record.status = status;
      res.writeHead(status, headers);
    };
    const fault = this.faults.get(path) ?? {};
    const content = this.contents.get(path);
    if (fault.delayMs) await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
    if (fault.status && (fault.status.times === undefined || fault.status.times-- > 0)) {
      reply(fault.status.code, { "content-length": 0 });
      return void res.end();
    }
    if (!content) {
      reply(404, { "content-type": "text/plain" });
      return void res.end("not found\n");
    }
    const body = fault.body ?? content;
    const size = Buffer.isBuffer(body) ? body.length : statSync(body.file).size;
    const range = fault.ignoreRange ? undefined : parseRange(req.headers.range);
    if (range !== undefined && range.start >= size) {
      reply(416, { "content-range": `bytes */${size}`, "content-length": 0 });
      return void res.end();
    }
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? size - 1, size - 1);
    const headers: Record<string, string | number> = fault.page
      ? { "content-type": fault.page.contentType }
      : fault.trailerDrip
        ? { "content-type": "application/octet-stream", "transfer-encoding": "chunked" }
        : {
            "content-type": "application/octet-stream",
            "accept-ranges": "bytes",
            "content-length": end - start + 1,
          };
    if (range) reply(206, { ...headers, "content-range": `bytes ${start}-${end}/${size}` });
    else reply(200, headers);
    if (req.method === "HEAD") return void res.end();

    const drop = fault.dropAfter && fault.dropAfter.times > 0 ? fault.dropAfter : undefined;
    if (drop) drop.times -= 1;
    const cut = drop?.bytes ?? fault.stallAfter;
    const source = Buffer.isBuffer(body)
      ? [body.subarray(start, end + 1)]
      : createReadStream(body.file, { start, end, highWaterMark: 1 << 20 });
    await sendBody(res, fault.bytesPerSecond ? throttle(source, fault.bytesPerSecond) : source, cut);
    if (fault.trailerDrip) dripTrailers(res, fault.trailerDrip.everyMs);
    else if (cut === undefined) res.end();
    else if (drop) res.socket?.destroy();
    // A stall keeps the connection open and silent until the client gives up or close() cuts it.
  }
}

async function sendBody(res: ServerResponse, source: Iterable<Buffer> | AsyncIterable<Buffer>, cut?: number) {
  let sent = 0;
  for await (const chunk of source) {
    const piece = cut === undefined ? chunk : chunk.subarray(0, Math.max(0, cut - sent));
    sent += piece.length;
    if (piece.length > 0 && !res.write(piece)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off("drain", done);
          res.off("close", done);
          resolve();
        };
        res.on("drain", done);
        res.on("close", done);
      });
    }
    if (res.destroyed || (cut !== undefined && sent >= cut)) break;
  }
  // Let what was written reach the socket before a drop cuts it.
  if (!res.destroyed) await new Promise<void>((resolve) => res.write("", () => resolve()));
}

/** Ends the chunked body with its last chunk, then sends trailer fields one by one and never the blank line. */
function dripTrailers(res: ServerResponse, everyMs: number): void {
  const socket = res.socket;
  if (!socket) return;
  // Written on the socket itself: the response would otherwise end the trailer section for us.
  socket.write("0\r\n");
  let sent = 0;
  const timer = setInterval(() => socket.write(`x-drip-${sent++}: still here\r\n`), everyMs);
  socket.on("close", () => clearInterval(timer));
}

/** Re-slices `source` into 64 KiB pieces, each released no earlier than `bytesPerSecond` allows. */
async function* throttle(source: Iterable<Buffer> | AsyncIterable<Buffer>, bytesPerSecond: number) {
  const started = Date.now();
  let released = 0;
  for await (const whole of source) {
    for (let at = 0; at < whole.length; at += 65536) {
      const due = started + (released / bytesPerSecond) * 1000;
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
      const piece = whole.subarray(at, at + 65536);
      released += piece.length;
      yield piece;
    }
  }
}

function parseRange(header: string | undefined): { start: number; end?: number } | undefined {
  const match = header ? /^bytes=(\d+)-(\d*)$/.exec(header) : null;
  if (!match) return undefined;
  return { start: Number(match[1]), end: match[2] ? Number(match[2]) : undefined };
}

/** A port on 127.0.0.1 where nothing listens (it was free a moment ago), for "connection refused". */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
