/**
 * The HTTP/1.1 reply side of a GET, parsed from raw socket bytes (RFC 9112): the status line and headers,
 * then the body framed by Content-Length, chunked transfer coding, or the end of the connection.
 * Pure functions over buffers, so the downloader can read the socket into one reused buffer.
 */

import { HTTP_TOKEN } from "../host/http.js";

export interface ReplyHead {
  statusCode: number;
  statusMessage: string;
  /** Lower-case names; repeated headers joined with ", " (as Node's http does). */
  headers: Record<string, string>;
}

/** A reply that is not HTTP/1.x as the RFC writes it: never worth a retry. */
export class ProtocolError extends Error {
  readonly code = "ERR_HTTP_PROTOCOL";
}

/** Replies with a longer head are refused (Node's own limit is 16 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024;
const HEAD_END = Buffer.from("\r\n\r\n");
const MAX_LINE_BYTES = 4096;
/** Trailer fields after the last chunk are read up to this size, then the reply counts as ended. */
export const MAX_TRAILER_BYTES = 16 * 1024;

/** Where the head ends in `data` (the index just past its blank line), or -1 while it is incomplete. */
export function headLength(data: Buffer): number {
  const at = data.indexOf(HEAD_END);
  if (at < 0) {
    if (data.length > MAX_HEAD_BYTES)
      throw new ProtocolError(`the reply head is larger than ${MAX_HEAD_BYTES} bytes`);
    return -1;
  }
  return at + HEAD_END.length;
}

export function parseHead(head: Buffer): ReplyHead {
  const lines = head.toString("latin1").split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? "");
  if (!status)
    throw new ProtocolError(`not an HTTP/1.1 status line: ${JSON.stringify((lines[0] ?? "").slice(0, 80))}`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).toLowerCase();
    // Folded lines and names with spaces are how smuggled replies look: refused, never guessed at.
    if (colon <= 0 || !HTTP_TOKEN.test(name))
      throw new ProtocolError(`malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { statusCode: Number(status[1]), statusMessage: status[2] ?? "", headers };
}

export type Framing = { kind: "length"; bytes: number } | { kind: "chunked" } | { kind: "close" };

/** How the body of a reply to a GET is delimited. */
export function framingOf(head: ReplyHead): Framing {
  const { statusCode, headers } = head;
  if (statusCode < 200 || statusCode === 204 || statusCode === 304) return { kind: "length", bytes: 0 };
  const coding = headers["transfer-encoding"];
  if (coding !== undefined) {
    const last = coding.split(",").pop()?.trim().toLowerCase();
    return last === "chunked" ? { kind: "chunked" } : { kind: "close" };
  }
  const length = headers["content-length"];
  if (length === undefined) return { kind: "close" };
  const values = new Set(length.split(",").map((v) => v.trim()));
  const [only] = values;
  if (values.size !== 1 || !only || !/^\d{1,15}$/.test(only))
    throw new ProtocolError(`invalid Content-Length: ${JSON.stringify(length)}`);
  return { kind: "length", bytes: Number(only) };
}

type ChunkState = "size" | "data" | "data-end" | "trailer" | "done";

/**
 * Turns the raw bytes after the head into body bytes. `feed` hands each piece of body to `emit` as a view of
 * the input (valid only during the call) and returns true once the body is complete.
 */
export class BodyDecoder {
  private remaining: number;
  private state: ChunkState = "size";
  private line = "";
  private trailerBytes = 0;

  constructor(private readonly framing: Framing) {
    this.remaining = framing.kind === "length" ? framing.bytes : 0;
  }

  get done(): boolean {
    if (this.framing.kind === "length") return this.remaining === 0;
    return this.framing.kind === "chunked" && this.state === "done";
  }

  /** Every body byte has arrived; only the trailer section of a chunked reply may still be coming. */
  get bodyComplete(): boolean {
    return this.done || this.state === "trailer";
  }

  /** Whether a connection closing now ends the body properly (else the reply was cut short). */
  get completeAtClose(): boolean {
    return this.framing.kind === "close" || this.bodyComplete;
  }

  feed(data: Buffer, emit: (body: Buffer) => void): boolean {
    if (this.framing.kind === "close") {
      if (data.length > 0) emit(data);
      return false;
    }
    if (this.framing.kind === "length") {
      const take = Math.min(this.remaining, data.length);
      if (take > 0) emit(data.subarray(0, take));
      this.remaining -= take;
      return this.remaining === 0;
    }
    let at = 0;
    while (at < data.length && this.state !== "done") {
      if (this.state === "data") {
        const take = Math.min(this.remaining, data.length - at);
        emit(data.subarray(at, at + take));
        at += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = "data-end";
        continue;
      }
      const newline = data.indexOf(0x0a, at);
      const end = newline < 0 ? data.length : newline;
      if (this.state === "trailer") {
        // Trailer fields are never used: only whether a line is blank matters, and the section is capped.
        this.trailerBytes += end - at + (newline < 0 ? 0 : 1);
        if (this.trailerBytes > MAX_TRAILER_BYTES) this.state = "done";
        if (this.line.length < 2) this.line += data.toString("latin1", at, Math.min(end, at + 2));
      } else {
        this.line += data.toString("latin1", at, end);
        if (this.line.length > MAX_LINE_BYTES) throw new ProtocolError("a chunk line is too long");
      }
      if (this.state === "done") break;
      at = end;
      if (newline < 0) break;
      at += 1;
      const line = this.line.replace(/\r$/, "");
      this.line = "";
      this.endLine(line);
    }
    return this.state === "done";
  }

  private endLine(line: string): void {
    if (this.state === "data-end") {
      if (line !== "") throw new ProtocolError("a chunk is longer than its announced size");
      this.state = "size";
    } else if (this.state === "size") {
      const size = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line)?.[1];
      if (size === undefined)
        throw new ProtocolError(`invalid chunk size line: ${JSON.stringify(line.slice(0, 40))}`);
      this.remaining = Number.parseInt(size, 16);
      this.state = this.remaining === 0 ? "trailer" : "data";
    } else if (this.state === "trailer" && line === "") {
      this.state = "done";
    }
  }
}
