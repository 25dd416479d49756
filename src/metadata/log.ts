import { createWriteStream, openSync, type WriteStream } from "node:fs";
import { OPEN_PRIVATE } from "../host/private-files.js";

/** What one connection asked and got; this is what the metadata log records. */
export interface ServedRequest {
  method: string;
  path: string;
  status: number;
  /** Body bytes sent. */
  bytes: number;
  durationMs: number;
  /** `refused: <the bound that was hit>` or `cut short: <why>`; absent when the answer was delivered. */
  note?: string;
}

/** Where the server writes: one line per request, per refusal and per event of its own. */
export interface MetadataLog {
  served(request: ServedRequest): void;
  /** A line of the server's own: it listens, it stops, it refused connections. */
  note(text: string): void;
  close(): Promise<void>;
}

/**
 * Appends to `.castra/logs/<vm>-metadata.log` (0600) through one open file. Lines never hold a token (a
 * header) nor user-data (a body); guest-controlled text is made printable and cut short.
 */
export function openMetadataLog(path: string): MetadataLog {
  // A link planted at the log is refused (ELOOP), never followed.
  const stream: WriteStream = createWriteStream("", { fd: openSync(path, OPEN_PRIVATE.append, 0o600) });
  // A full disk must not cost the guest its answers; the server has nowhere else to report it.
  stream.on("error", () => {});
  const write = (text: string) => {
    if (!stream.destroyed) stream.write(`${new Date().toISOString()} ${text}\n`);
  };
  return {
    served: (request) => write(formatServed(request)),
    note: write,
    close: () => new Promise((resolve) => stream.end(resolve)),
  };
}

export function formatServed(r: ServedRequest): string {
  const line = `${r.method} ${r.path} ${r.status} ${r.bytes}B ${r.durationMs}ms`;
  return r.note ? `${line} ${r.note}` : line;
}

/** Keeps guest-controlled text on one readable log line. */
export function printable(value: string, max: number): string {
  const clean = value.replace(/[^\x21-\x7e]/g, "?");
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
