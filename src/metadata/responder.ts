import { appendFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { Readable, Writable } from "node:stream";
import { OPEN_PRIVATE } from "../host/private-files.js";
import type { ResponderConfig } from "./config.js";
import { answerEc2, text } from "./ec2.js";
import {
  DEFAULT_READ_LIMITS,
  formatResponse,
  type HttpResponse,
  type ReadLimits,
  readRequest,
} from "./http.js";

/** What one connection asked and got; this is what the metadata log records. */
export interface ServedRequest {
  method: string;
  path: string;
  status: number;
  /** Body bytes sent. */
  bytes: number;
  durationMs: number;
}

export interface ServeOptions {
  limits?: ReadLimits;
  now?: () => number;
}

/**
 * Answers one guest connection: reads one request from `input`, writes one response to `output`, closes it,
 * then appends a line to the config's log. Resolves undefined when the guest sent nothing.
 */
export async function serveConnection(
  input: Readable,
  output: Writable,
  config: ResponderConfig,
  options: ServeOptions = {},
): Promise<ServedRequest | undefined> {
  const now = options.now ?? Date.now;
  const started = performance.now();
  const outcome = await readRequest(input, options.limits ?? DEFAULT_READ_LIMITS);
  if (outcome.kind === "closed") {
    await close(input, output, Buffer.alloc(0));
    return undefined;
  }

  const method = outcome.kind === "request" ? outcome.request.method : (outcome.method ?? "-");
  let response: HttpResponse;
  if (outcome.kind === "rejected") {
    response = text(outcome.status, outcome.reason);
  } else if (config.flavour === "none") {
    // A guest that was not given a metadata service finds nothing at all, as on a bare host.
    response = text(404, "not found");
  } else {
    response = await answerEc2(config, outcome.request, now()).catch(() => text(500, "internal error"));
  }
  const target = outcome.kind === "request" ? outcome.request.target : (outcome.target ?? "-");
  const includeBody = method !== "HEAD";
  await close(input, output, formatResponse(response, includeBody));

  const served: ServedRequest = {
    method: printable(method, 16),
    path: printable(target.split("?")[0] ?? "", 256),
    status: response.status,
    bytes: includeBody ? response.body.length : 0,
    durationMs: Math.round(performance.now() - started),
  };
  await appendLogLine(config.logPath, served);
  return served;
}

/** Answers 500 when the responder has no usable configuration, and so no log either. */
export async function serveUnavailable(input: Readable, output: Writable, message: string): Promise<void> {
  const outcome = await readRequest(input, DEFAULT_READ_LIMITS);
  const isHead = outcome.kind === "request" && outcome.request.method === "HEAD";
  const answer = outcome.kind === "closed" ? Buffer.alloc(0) : formatResponse(text(500, message), !isHead);
  await close(input, output, answer);
}

/** How long to keep discarding a guest's unread bytes after answering, so closing does not reset the answer. */
const LINGER_MS = 500;

/** Sends the response and closes both directions; a guest that already left is not an error. */
function close(input: Readable, output: Writable, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    let sent = false;
    const done = () => {
      if (sent) return;
      sent = true;
      resolve();
      if (input.readableEnded || input.destroyed) return void input.destroy();
      // Closing with unread bytes would send a TCP reset, which can discard the answer the guest has not read yet.
      const timer = setTimeout(() => input.destroy(), LINGER_MS);
      const finish = () => {
        clearTimeout(timer);
        input.destroy();
      };
      input.once("end", finish);
      input.once("error", finish);
      input.resume();
    };
    output.once("error", done);
    output.end(bytes, done);
  });
}

/** One line per request; never the token (a header) nor the user-data (a body). */
async function appendLogLine(path: string, served: ServedRequest): Promise<void> {
  const line = `${new Date().toISOString()} ${served.method} ${served.path} ${served.status} ${served.bytes}B ${served.durationMs}ms\n`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await appendFile(path, line, { mode: 0o600, flag: OPEN_PRIVATE.append });
  } catch {
    // Logging must never cost the guest its answer; stderr would reach the guest, so there is nowhere to report.
  }
}

/** Keeps guest-controlled text on one readable log line. */
function printable(value: string, max: number): string {
  const clean = value.replace(/[^\x21-\x7e]/g, "?");
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
