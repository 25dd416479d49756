import http, { type ClientRequest, type IncomingMessage } from "node:http";
import https from "node:https";
import { StallError } from "./network-errors.js";

export interface HttpOptions {
  /** The socket may stay silent this long (connecting, waiting for headers, or mid-body). */
  stallTimeoutMs: number;
  signal?: AbortSignal;
}

/** An open GET whose body is read by the caller. */
export interface HttpConnection {
  res: IncomingMessage;
  /** The reason a read failed: the stall this connection detected, else `err` itself. */
  explain(err: unknown): unknown;
  close(): void;
}

const MAX_REDIRECTS = 5;

/** Sends a GET, following redirects; the stall timeout and the abort signal cover the whole exchange. */
export async function openHttp(
  url: string,
  headers: Record<string, string>,
  options: HttpOptions,
): Promise<HttpConnection> {
  let target = url;
  for (let hops = 0; ; hops++) {
    const conn = await requestOnce(target, headers, options);
    const { statusCode = 0, headers: replyHeaders } = conn.res;
    const location = replyHeaders.location;
    if (statusCode < 300 || statusCode >= 400 || !location || hops >= MAX_REDIRECTS) return conn;
    conn.close();
    const next = new URL(location, target);
    // A redirect may not leave http(s): a file: or other scheme from a server is never followed.
    if (next.protocol !== "http:" && next.protocol !== "https:") return conn;
    target = next.href;
  }
}

function requestOnce(
  url: string,
  headers: Record<string, string>,
  options: HttpOptions,
): Promise<HttpConnection> {
  const get = new URL(url).protocol === "https:" ? https.get : http.get;
  let stalled: StallError | undefined;
  let req: ClientRequest;
  const onAbort = () => req.destroy(new Error("aborted"));
  return new Promise((resolve, reject) => {
    // agent: false — one connection per download; nothing lingers to keep the process alive.
    // A large highWaterMark reads the socket in big slices: far fewer chunks to hash and batch per MiB.
    const request = { headers, agent: false, timeout: options.stallTimeoutMs, highWaterMark: 1 << 20 };
    req = get(url, request, (res) => {
      resolve({
        res,
        explain: (err) => stalled ?? err,
        close: () => {
          options.signal?.removeEventListener("abort", onAbort);
          res.destroy();
          req.destroy();
        },
      });
    });
    req.on("timeout", () => {
      stalled = new StallError(options.stallTimeoutMs);
      req.destroy(stalled);
    });
    req.on("error", (err) => {
      options.signal?.removeEventListener("abort", onAbort);
      reject(stalled ?? err);
    });
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener("abort", onAbort, { once: true });
  });
}
