import { connect as connectTcp, isIP, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import { BodyDecoder, framingOf, headLength, parseHead, type ReplyHead } from "./http-reply.js";
import { proxyConnectionError, proxyStatusError, StallError } from "./network-errors.js";
import type { HttpProxy, ProxyResolver } from "./proxy-env.js";
import { authorityOf, openTunnel } from "./proxy-tunnel.js";

export interface HttpOptions {
  /** The socket may stay silent this long (connecting, waiting for headers, or mid-body). */
  stallTimeoutMs: number;
  signal?: AbortSignal;
  /** Picks the proxy for each request, redirects included; without it every request goes direct. */
  proxy?: ProxyResolver;
}

/** Receives body bytes: `chunk` is a view of a reused buffer, valid only during the call. A promise pauses reading. */
export type BodySink = (chunk: Buffer) => Promise<void> | undefined;

/** An open GET whose head has arrived; the caller reads the body. */
export interface HttpConnection {
  res: ReplyHead;
  /** Streams the whole body into `sink`; rejects when the connection breaks before the body's end. */
  readBody(sink: BodySink): Promise<void>;
  /** The reason a read failed: the stall this connection detected, else `err` itself. */
  explain(err: unknown): unknown;
  close(): void;
}

const MAX_REDIRECTS = 5;
/** Trailer fields after the last chunk may take this long (or the stall timeout, if shorter), then the reply ends. */
export const TRAILER_TIMEOUT_MS = 5000;
/**
 * The socket is read into this one buffer, over and over: no allocation per read, and none of the copy Node's
 * http module makes of every body chunk. At disk-image sizes that halves the CPU a download costs.
 */
const READ_BUFFER_BYTES = 1 << 20;

/** Sends a GET, following redirects; the stall timeout and the abort signal cover the whole exchange. */
export async function openHttp(
  url: string,
  headers: Record<string, string>,
  options: HttpOptions,
): Promise<HttpConnection> {
  let target = url;
  for (let hops = 0; ; hops++) {
    const conn = await exchange(new URL(target), headers, options);
    const { statusCode, headers: replyHeaders } = conn.res;
    const location = replyHeaders.location;
    if (statusCode < 300 || statusCode >= 400 || !location || hops >= MAX_REDIRECTS) return conn;
    conn.close();
    const next = new URL(location, target);
    // A redirect may not leave http(s): a file: or other scheme from a server is never followed.
    if (next.protocol !== "http:" && next.protocol !== "https:") return conn;
    target = next.href;
  }
}

/** How a request reaches its server: directly, as an absolute-form GET to an http proxy, or through a tunnel. */
type Route = { kind: "direct" } | { kind: "forward"; proxy: HttpProxy } | { kind: "tunnel"; socket: Socket };

/** One GET to `target`, through the proxy the options pick for it (README, "Proxies"). */
async function exchange(
  target: URL,
  headers: Record<string, string>,
  options: HttpOptions,
): Promise<HttpConnection> {
  const proxy = options.proxy?.(target);
  if (!proxy) return new Exchange(target, headers, options, { kind: "direct" }).opened;
  if (target.protocol === "https:") {
    const socket = await openTunnel(proxy, target, options);
    return new Exchange(target, headers, options, { kind: "tunnel", socket }).opened;
  }
  const conn = await new Exchange(target, headers, options, { kind: "forward", proxy }).opened;
  if (conn.res.statusCode !== 407) return conn;
  conn.close();
  throw proxyStatusError(proxy, 407, conn.res.statusMessage, authorityOf(target));
}

/** One request on its own connection (`Connection: close`), read with a fixed buffer. */
class Exchange {
  readonly opened: Promise<HttpConnection>;
  private readonly socket: Socket;
  /** head: reading the status line and headers; parked: paused until readBody; body: streaming to the sink. */
  private phase: "head" | "parked" | "body" = "head";
  private head: Buffer = Buffer.alloc(0);
  private reply: ReplyHead | undefined;
  /** Body bytes that came in with the head, copied (the read buffer is reused) until readBody. */
  private early: Buffer = Buffer.alloc(0);
  private decoder: BodyDecoder | undefined;
  private sink: BodySink | undefined;
  private stalled: StallError | undefined;
  private trailerTimer: NodeJS.Timeout | undefined;
  private settle: { resolve: () => void; reject: (err: unknown) => void } | undefined;
  private finished = false;
  private closed = false;
  private failure: unknown;

  constructor(
    target: URL,
    headers: Record<string, string>,
    private readonly options: HttpOptions,
    route: Route,
  ) {
    this.socket = this.connect(target, route);
    this.socket.setTimeout(options.stallTimeoutMs);
    this.opened = new Promise<HttpConnection>((resolve, reject) => {
      this.settle = { resolve: () => resolve(this.connection()), reject };
    });
    this.opened.catch(() => {}); // a failure is reported through `opened` to whoever awaits it
    this.socket.on("timeout", () => {
      this.stalled = new StallError(options.stallTimeoutMs);
      this.socket.destroy(this.stalled);
    });
    // Until the proxy has accepted the connection, a failure is the proxy's, not the server's.
    let reachedProxy = route.kind !== "forward";
    this.socket.once("connect", () => {
      reachedProxy = true;
    });
    this.socket.on("error", (err) => {
      const cause = this.stalled ?? err;
      this.fail(!reachedProxy && route.kind === "forward" ? proxyConnectionError(route.proxy, cause) : cause);
    });
    this.socket.on("close", () => this.onClose());
    if (options.signal?.aborted) this.abort();
    else options.signal?.addEventListener("abort", this.abort, { once: true });
    this.socket.write(requestText(target, headers, route.kind === "forward" ? route.proxy : undefined));
  }

  private connect(target: URL, route: Route): Socket {
    const secure = target.protocol === "https:";
    const host = target.hostname.replace(/^\[(.*)\]$/, "$1");
    const tls = { host, servername: isIP(host) ? undefined : host, ALPNProtocols: ["http/1.1"] };
    if (route.kind === "tunnel") {
      // TLS inside a tunnel checks the origin's certificate against its name; over an existing socket, Node
      // ignores `onread`, so its bytes arrive as data events.
      const socket = connectTls({ ...tls, socket: route.socket });
      socket.on("data", (data: Buffer) => {
        if (!this.onBytes(data)) socket.pause();
      });
      return socket;
    }
    const buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    const onread = { buffer, callback: (n: number) => this.onBytes(buffer.subarray(0, n)) };
    if (route.kind === "forward")
      return connectTcp({ host: route.proxy.host, port: route.proxy.port, onread });
    const port = Number(target.port) || (secure ? 443 : 80);
    if (!secure) return connectTcp({ host, port, onread });
    // Node's TLS honours `onread` when it makes the TCP connection itself, though its types omit it.
    const direct = { ...tls, port, onread };
    return connectTls(direct);
  }

  private readonly abort = () => this.socket.destroy(new Error("aborted"));

  private connection(): HttpConnection {
    const head = this.reply as ReplyHead;
    return {
      res: head,
      readBody: (sink) => this.readBody(head, sink),
      explain: (err) => this.stalled ?? err,
      close: () => this.close(),
    };
  }

  /** Returns false to pause the socket: after the head, and while the sink digests a batch. */
  private onBytes(data: Buffer): boolean {
    try {
      if (this.phase === "head") return this.takeHead(data);
      if (this.phase === "body") return this.takeBody(data);
      this.early = Buffer.concat([this.early, data]);
      return false;
    } catch (err) {
      this.socket.destroy(err as Error);
      return false;
    }
  }

  private takeHead(data: Buffer): boolean {
    this.head = Buffer.concat([this.head, data]);
    const length = headLength(this.head);
    if (length < 0) return true;
    this.early = Buffer.from(this.head.subarray(length));
    this.reply = parseHead(this.head.subarray(0, length));
    this.phase = "parked";
    const settle = this.settle;
    this.settle = undefined;
    settle?.resolve();
    return false;
  }

  private takeBody(data: Buffer): boolean {
    const decoder = this.decoder as BodyDecoder;
    const waits: Promise<void>[] = [];
    const done = decoder.feed(data, (chunk) => {
      const wait = this.sink?.(chunk);
      if (wait) waits.push(wait);
    });
    if (done) {
      Promise.all(waits).then(
        () => this.finish(),
        (err) => this.fail(err),
      );
      return false;
    }
    // Every body byte is here: a server that keeps the trailer section open only delays the end, so it is cut.
    if (decoder.bodyComplete && !this.trailerTimer) {
      const limit = Math.min(TRAILER_TIMEOUT_MS, this.options.stallTimeoutMs);
      this.trailerTimer = setTimeout(() => this.finish(), limit);
    }
    if (waits.length === 0) return true;
    Promise.all(waits).then(
      () => {
        if (!this.finished) this.socket.resume();
      },
      (err) => this.socket.destroy(err),
    );
    return false;
  }

  private readBody(head: ReplyHead, sink: BodySink): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.finished) return reject(this.failure ?? new Error("the connection is closed"));
      this.settle = { resolve, reject };
      this.sink = sink;
      try {
        this.decoder = new BodyDecoder(framingOf(head));
        this.phase = "body";
        const early = this.early;
        this.early = Buffer.alloc(0);
        if (this.takeBody(early)) {
          if (this.closed) this.onClose();
          else this.socket.resume();
        }
      } catch (err) {
        this.socket.destroy(err as Error);
      }
    });
  }

  private onClose(): void {
    this.closed = true;
    if (this.finished || this.phase === "parked") return; // readBody decides once it has the early bytes
    if (this.decoder?.completeAtClose) this.finish();
    // Closed before the head, or before the body's announced end: a cut connection, worth a retry.
    else this.fail(Object.assign(new Error("aborted"), { code: "ECONNRESET" }));
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.cleanUp();
    this.settle?.resolve();
  }

  private fail(err: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = err;
    this.cleanUp();
    this.settle?.reject(err);
  }

  private close(): void {
    this.finished = true;
    this.cleanUp();
  }

  private cleanUp(): void {
    clearTimeout(this.trailerTimer);
    this.options.signal?.removeEventListener("abort", this.abort);
    this.socket.destroy();
  }
}

/** The GET; to an http proxy, in absolute form (`GET http://host/path`) with the proxy's credentials. */
function requestText(target: URL, headers: Record<string, string>, proxy?: HttpProxy): string {
  const origin = proxy ? `${target.protocol}//${target.host}` : "";
  const lines = [`GET ${origin}${target.pathname}${target.search} HTTP/1.1`, `Host: ${target.host}`];
  if (proxy?.authorization) lines.push(`Proxy-Authorization: ${proxy.authorization}`);
  // A mirror URL may carry user:password@, which Node's http.get turned into Basic auth too.
  if (target.username || target.password) {
    const user = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
    lines.push(`Authorization: Basic ${Buffer.from(user).toString("base64")}`);
  }
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  lines.push("Connection: close", "", "");
  return lines.join("\r\n");
}
