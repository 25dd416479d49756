import type { Readable } from "node:stream";
import { HTTP_TOKEN } from "../host/http.js";

/** One parsed HTTP/1.x request; header names are lower case. */
export interface HttpRequest {
  method: string;
  target: string;
  headers: Map<string, string>;
  body: Buffer;
}

export type ReadOutcome =
  | { kind: "request"; request: HttpRequest }
  /** The bytes were not a request we accept; answer `status` and close. */
  | { kind: "rejected"; status: number; reason: string; method?: string; target?: string }
  /** The peer closed without sending anything. */
  | { kind: "closed" };

export interface ReadLimits {
  /** Request line plus headers. */
  maxHeaderBytes: number;
  maxBodyBytes: number;
  /** The whole request must arrive within this time. */
  timeoutMs: number;
}

/** Reads exactly one request; `nc` clients send HTTP/1.0 and may use bare `\n` line endings. */
export function readRequest(input: Readable, limits: ReadLimits): Promise<ReadOutcome> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    let head: Omit<HttpRequest, "body"> | undefined;
    let bodyStart = 0;
    let bodyLength = 0;
    const tooLarge = `request headers over ${limits.maxHeaderBytes} bytes`;

    const finish = (outcome: ReadOutcome) => {
      clearTimeout(timer);
      input.off("data", onData);
      input.off("end", onEnd);
      input.off("error", onEnd);
      input.off("close", onEnd);
      input.pause();
      resolve(outcome);
    };
    const reject = (status: number, reason: string) => {
      // Without a complete head, the log still names what was asked when the request line arrived.
      const line = head ?? partialRequestLine(buffered);
      finish({ kind: "rejected", status, reason, method: line?.method, target: line?.target });
    };

    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!head) {
        // Clients may send stray blank lines before the request line (RFC 9112 section 2.2).
        const text = buffered.toString("latin1").replace(/^(\r?\n)+/, "");
        const end = /\r?\n\r?\n/.exec(text);
        if (!end) {
          if (text.length > limits.maxHeaderBytes) reject(431, tooLarge);
          return;
        }
        if (end.index > limits.maxHeaderBytes) return reject(431, tooLarge);
        const parsed = parseHead(text.slice(0, end.index));
        if (typeof parsed === "string") return reject(400, parsed);
        head = parsed;
        bodyStart = buffered.length - text.length + end.index + end[0].length;
        const framing = bodyFraming(head.headers, limits.maxBodyBytes);
        if (typeof framing !== "number") return reject(framing.status, framing.reason);
        bodyLength = framing;
      }
      if (buffered.length >= bodyStart + bodyLength) {
        const body = buffered.subarray(bodyStart, bodyStart + bodyLength);
        finish({ kind: "request", request: { ...head, body } });
      }
    };
    const onEnd = () =>
      buffered.length === 0 ? finish({ kind: "closed" }) : reject(400, "connection closed mid-request");
    const timer = setTimeout(
      () => reject(408, `request not received within ${limits.timeoutMs} ms`),
      limits.timeoutMs,
    );

    input.on("data", onData);
    input.on("end", onEnd);
    input.on("error", onEnd);
    // A connection destroyed from this side (the server stopping) ends without "end".
    input.on("close", onEnd);
    input.resume();
  });
}

function partialRequestLine(buffered: Buffer): { method: string; target: string } | undefined {
  const match = /^(?:\r?\n)*([A-Za-z]+) +(\S+) +HTTP\/[\d.]+\r?\n/.exec(buffered.toString("latin1", 0, 8192));
  return match?.[1] && match[2] ? { method: match[1].toUpperCase(), target: match[2] } : undefined;
}

function parseHead(text: string): Omit<HttpRequest, "body"> | string {
  const [requestLine = "", ...lines] = text.split(/\r?\n/);
  const match = /^([A-Za-z]+) +(\S+) +HTTP\/1\.[01]$/.exec(requestLine.trim());
  if (!match?.[1] || !match[2]) return "malformed request line";
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    // A leading space is an obsolete folded header: refused, as RFC 9112 allows.
    if (colon <= 0 || /^\s/.test(line)) return "malformed header line";
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!HTTP_TOKEN.test(name)) return "malformed header name";
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  return { method: match[1].toUpperCase(), target: match[2], headers };
}

function bodyFraming(
  headers: Map<string, string>,
  maxBodyBytes: number,
): number | { status: number; reason: string } {
  if (headers.has("transfer-encoding"))
    return { status: 501, reason: "chunked request bodies are not supported" };
  const declared = headers.get("content-length");
  if (declared === undefined) return 0;
  if (!/^[0-9]{1,9}$/.test(declared)) return { status: 400, reason: "malformed Content-Length" };
  const length = Number(declared);
  return length > maxBodyBytes ? { status: 413, reason: `request body over ${maxBodyBytes} bytes` } : length;
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
};

export interface HttpResponse {
  status: number;
  headers?: Record<string, string>;
  body: Buffer;
  contentType?: string;
}

/**
 * Serialises a response as its head and its body, which is never copied (user-data may be megabytes, served
 * to several connections from one buffer); every connection carries exactly one, so `Connection: close`.
 */
export function formatResponse(response: HttpResponse, includeBody: boolean): Buffer[] {
  const lines = [
    `HTTP/1.1 ${response.status} ${REASONS[response.status] ?? "Unknown"}`,
    `Content-Type: ${response.contentType ?? "text/plain"}`,
    `Content-Length: ${response.body.length}`,
    "Connection: close",
    ...Object.entries(response.headers ?? {}).map(([name, value]) => `${name}: ${value}`),
  ];
  const head = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
  return includeBody ? [head, response.body] : [head];
}
