import type { Duplex } from "node:stream";
import type { MetadataBounds } from "./bounds.js";
import { answerEc2, type MetadataContent, text } from "./ec2.js";
import { formatResponse, type HttpResponse, readRequest } from "./http.js";
import { printable, type ServedRequest } from "./log.js";

export interface ServeOptions {
  bounds: Pick<MetadataBounds, "readTimeoutMs" | "writeTimeoutMs" | "maxHeaderBytes" | "maxBodyBytes">;
  now?: () => number;
}

/**
 * Answers one guest connection: reads one request within the read deadline and size limits, writes one
 * response within the write deadline, and closes. Resolves what the log records, or undefined when the
 * guest sent nothing.
 */
export async function serveConnection(
  socket: Duplex,
  content: MetadataContent,
  options: ServeOptions,
): Promise<ServedRequest | undefined> {
  const { bounds } = options;
  const now = options.now ?? Date.now;
  const started = performance.now();
  const outcome = await readRequest(socket, {
    maxHeaderBytes: bounds.maxHeaderBytes,
    maxBodyBytes: bounds.maxBodyBytes,
    timeoutMs: bounds.readTimeoutMs,
  });
  if (outcome.kind === "closed") {
    socket.destroy();
    return undefined;
  }

  const method = outcome.kind === "request" ? outcome.request.method : (outcome.method ?? "-");
  let response: HttpResponse;
  if (outcome.kind === "rejected") {
    response = text(outcome.status, outcome.reason);
  } else if (content.config.flavour === "none") {
    // A guest that was not given a metadata service finds nothing at all, as on a bare host.
    response = text(404, "not found");
  } else {
    try {
      response = answerEc2(content, outcome.request, now());
    } catch {
      response = text(500, "internal error");
    }
  }
  const target = outcome.kind === "request" ? outcome.request.target : (outcome.target ?? "-");
  const includeBody = method !== "HEAD";
  const delivery = await deliver(socket, formatResponse(response, includeBody), bounds.writeTimeoutMs);

  const bytes = includeBody ? response.body.length : 0;
  const note =
    outcome.kind === "rejected"
      ? `refused: ${outcome.reason}`
      : delivery === "timeout"
        ? `refused: answer not taken within ${bounds.writeTimeoutMs} ms, connection closed`
        : delivery === "gone"
          ? "cut short: the connection closed before the answer was taken"
          : undefined;
  return {
    method: printable(method, 16),
    path: printable(target.split("?")[0] ?? "", 256),
    status: response.status,
    bytes,
    durationMs: Math.round(performance.now() - started),
    ...(note ? { note } : {}),
  };
}

/** How long to keep discarding a guest's unread bytes after answering, so closing does not reset the answer. */
const LINGER_MS = 500;

/**
 * Sends the response and ends the connection. `timeout` when the guest did not take it all within the write
 * deadline (the connection is then destroyed); `gone` when the connection broke first.
 */
function deliver(
  socket: Duplex,
  parts: Buffer[],
  writeTimeoutMs: number,
): Promise<"sent" | "timeout" | "gone"> {
  if (socket.destroyed) return Promise.resolve("gone");
  return new Promise((resolve) => {
    let settled = false;
    const settle = (how: "sent" | "timeout" | "gone") => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(how);
    };
    const timer = setTimeout(() => {
      settle("timeout");
      socket.destroy();
    }, writeTimeoutMs);
    socket.once("error", () => settle("gone"));
    socket.once("close", () => settle("gone"));
    // One write for head and body: split, a small answer would cross QEMU's user network as two segments, and
    // slirp holds the second back (Nagle) until the guest acknowledges the first.
    socket.cork();
    for (const part of parts.slice(0, -1)) socket.write(part);
    socket.end(parts.at(-1), () => {
      settle("sent");
      linger(socket);
    });
  });
}

/** Closing with unread bytes would send a reset, which can discard the answer the guest has not read yet. */
function linger(socket: Duplex): void {
  if (socket.readableEnded || socket.destroyed) return void socket.destroy();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  const finish = () => {
    clearTimeout(timer);
    socket.destroy();
  };
  socket.once("end", finish);
  socket.once("error", finish);
  socket.resume();
}
