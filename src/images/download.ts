import { createReadStream } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { CastraError, DataError, InterruptedError, UnavailableError } from "../errors.js";
import { formatBytes } from "../host/bytes.js";
import { openHttp } from "./http-get.js";
import type { ReplyHead } from "./http-reply.js";
import {
  DeadlineError,
  HttpStatusError,
  isRetriable,
  networkError,
  TransientError,
} from "./network-errors.js";
import { PartialFile } from "./partial-file.js";
import type { ProxyResolver } from "./proxy-env.js";
import { redactUrl } from "./redact-url.js";

export type DownloadEvent =
  // `url` and `proxy` (the one the request goes through, if any) are for people: passwords are redacted.
  | {
      type: "download-start";
      url: string;
      bytes: number;
      resumeFrom: number;
      attempt: number;
      proxy?: string;
    }
  | { type: "download-restart"; reason: string }
  /** `idleMs`: time since the last byte arrived (a stall shows as a growing number, not a frozen bar). */
  | { type: "progress"; received: number; total: number; idleMs: number }
  | { type: "download-retry"; attempt: number; delayMs: number; reason: string }
  | { type: "download-done"; bytes: number; seconds: number };

export interface DownloadRequest {
  /** http, https or file URL. */
  url: string;
  /** The `.partial` file: resumed when it exists, kept on interruption, deleted when the bytes are wrong. */
  dest: string;
  size: number;
  sha256: string;
  signal?: AbortSignal;
  /** No byte for this long fails the download (exit 69). Default 30 s. */
  stallTimeoutMs?: number;
  /** Each transfer must average at least this rate, or fail at its deadline (exit 69; see `transferDeadlineMs`). */
  minBytesPerSecond?: number;
  /** Picks the proxy for each request (see `proxyFor`); without it, every request goes direct. */
  proxy?: ProxyResolver;
  /** Tries in all for resets and 5xx replies. Default 4. */
  attempts?: number;
  /** First retry delay; doubles each time. Default 500 ms. */
  backoffMs?: number;
  onEvent?: (event: DownloadEvent) => void;
}

export interface DownloadResult {
  sha256: string;
  size: number;
  /** Bytes fetched by this call (0 when the .partial already held them all). */
  transferred: number;
  seconds: number;
}

const PROGRESS_INTERVAL_MS = 100;
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
/** 32 KiB/s: Alpine's 122 MiB image may take 65 minutes before castra gives up on the transfer. */
export const DEFAULT_MIN_BYTES_PER_SECOND = 32 * 1024;

/** Node's timers fire at once beyond this (about 24.8 days): a longer deadline is this one. */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/**
 * How long one transfer of `bytes` may take in all (README, "Download limits"): the stall timeout, for
 * connecting and the first byte, plus the bytes at the minimum rate. It ends a server that trickles data.
 */
export function transferDeadlineMs(bytes: number, stallTimeoutMs: number, minBytesPerSecond: number): number {
  return Math.min(stallTimeoutMs + Math.ceil((bytes / minBytesPerSecond) * 1000), LONGEST_TIMER_MS);
}

/**
 * Downloads `url` into `dest` and verifies it: resumes with Range, hashes while streaming, retries resets with
 * backoff. Resolves only when `dest` holds exactly `size` bytes with the expected sha256.
 */
export async function download(req: DownloadRequest): Promise<DownloadResult> {
  const started = performance.now();
  const partial = await PartialFile.open(req.dest, req.size);
  const session = new Session(req, partial);
  try {
    if (partial.bytes < req.size) await session.fetchRemaining();
  } catch (err) {
    await partial.close().catch(() => {});
    // Wrong bytes are worth nothing, and neither is an empty file; anything else is kept for resume.
    if (err instanceof DataError || partial.bytes === 0) await rm(req.dest, { force: true });
    throw req.signal?.aborted ? interrupted(req, partial.bytes) : err;
  }
  await partial.close();
  const digest = partial.digest();
  if (partial.bytes !== req.size || digest !== req.sha256) {
    await rm(req.dest, { force: true });
    throw mismatch(req, `sha256 ${digest} (${partial.bytes} bytes)`);
  }
  const seconds = Math.round(performance.now() - started) / 1000;
  const { transferred } = session;
  if (transferred > 0) req.onEvent?.({ type: "download-done", bytes: transferred, seconds });
  return { sha256: digest, size: partial.bytes, transferred, seconds };
}

/** One call's state across attempts. */
class Session {
  transferred = 0;
  private lastByteAt = performance.now();

  constructor(
    private readonly req: DownloadRequest,
    private readonly partial: PartialFile,
  ) {}

  async fetchRemaining(): Promise<void> {
    if (new URL(this.req.url).protocol === "file:") return this.copyFile();
    const attempts = this.req.attempts ?? 4;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.fetchOnce(attempt);
      } catch (err) {
        await this.partial.flush();
        if (this.req.signal?.aborted || err instanceof CastraError) throw err;
        const progress = { received: this.partial.bytes, total: this.req.size };
        if (!isRetriable(err) || attempt >= attempts)
          throw networkError(err, this.req.url, progress, this.req.proxy?.(new URL(this.req.url)));
        const delayMs = (this.req.backoffMs ?? 500) * 2 ** (attempt - 1);
        const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        this.req.onEvent?.({ type: "download-retry", attempt: attempt + 1, delayMs, reason });
        await sleep(delayMs, undefined, { signal: this.req.signal }).catch(() => {});
        if (this.req.signal?.aborted) throw err;
      }
    }
  }

  private async fetchOnce(attempt: number): Promise<void> {
    const { req, partial } = this;
    const from = partial.bytes;
    const via = req.proxy?.(new URL(req.url));
    req.onEvent?.({
      type: "download-start",
      url: redactUrl(req.url),
      bytes: req.size,
      resumeFrom: from,
      attempt,
      ...(via && { proxy: via.shown }),
    });
    const headers: Record<string, string> = { "accept-encoding": "identity", "user-agent": "castra" };
    if (from > 0) headers.range = `bytes=${from}-`;
    const stallTimeoutMs = req.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    const minRate = req.minBytesPerSecond ?? DEFAULT_MIN_BYTES_PER_SECOND;
    const limitMs = transferDeadlineMs(req.size - from, stallTimeoutMs, minRate);
    const deadline = AbortSignal.timeout(limitMs);
    const signal = req.signal ? AbortSignal.any([req.signal, deadline]) : deadline;
    const overdue = (err: unknown) =>
      deadline.aborted && !req.signal?.aborted ? new DeadlineError(limitMs, minRate) : err;
    // Progress is reported on a clock, not only when bytes arrive: a burst then a stall must still show.
    this.lastByteAt = performance.now();
    const ticker = setInterval(() => this.report(), PROGRESS_INTERVAL_MS);
    ticker.unref();
    const conn = await openHttp(req.url, headers, { stallTimeoutMs, signal, proxy: req.proxy }).catch(
      (err: unknown) => {
        clearInterval(ticker);
        throw overdue(err);
      },
    );
    try {
      if (!(await this.acceptResponse(conn.res, from))) return;
      await conn.readBody((chunk) => this.take(chunk));
      // A cut connection throws above; a reply that ends cleanly but short is simply another file.
      if (partial.bytes < req.size) throw mismatch(req, `${partial.bytes} bytes: the reply ended early`);
    } catch (err) {
      throw overdue(conn.explain(err));
    } finally {
      clearInterval(ticker);
      conn.close();
    }
  }

  private report(): void {
    const idleMs = Math.round(performance.now() - this.lastByteAt);
    this.req.onEvent?.({ type: "progress", received: this.partial.bytes, total: this.req.size, idleMs });
  }

  /** Checks the reply before reading its body; false when there is nothing to read (416). */
  private async acceptResponse(res: ReplyHead, from: number): Promise<boolean> {
    const { req, partial } = this;
    const status = res.statusCode ?? 0;
    if (status === 416) return false; // every byte is already here: verification decides
    // A captive portal or login page answers 200 with HTML: not worth a retry, and never worth keeping.
    if ((status === 200 || status === 206) && /^text\/html\b/i.test(res.headers["content-type"] ?? ""))
      throw webPage(req, res.headers["content-type"] ?? "");
    if (status === 200) {
      if (from > 0) {
        await partial.restart();
        req.onEvent?.({ type: "download-restart", reason: "the server ignored the Range request" });
      }
      const length = res.headers["content-length"];
      if (length !== undefined && Number(length) !== req.size) throw sizeMismatch(req, Number(length));
      return true;
    }
    if (status === 206) {
      const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers["content-range"] ?? "");
      if (range?.[3] && range[3] !== "*" && Number(range[3]) !== req.size)
        throw sizeMismatch(req, Number(range[3]));
      if (!range || Number(range[1]) !== from) {
        await partial.restart();
        throw new TransientError(`the server answered the Range request from the wrong offset`);
      }
      return true;
    }
    throw new HttpStatusError(status, res.statusMessage ?? "");
  }

  /** Hashes and stores one chunk (a view of a reused buffer: it is copied); a promise means "wait for the disk". */
  private take(chunk: Buffer): Promise<void> | undefined {
    const { req, partial } = this;
    if (partial.bytes + chunk.length > req.size) {
      throw mismatch(req, `more than ${req.size} bytes: the server sent a different file`);
    }
    const wait = partial.append(chunk);
    this.transferred += chunk.length;
    if (chunk.length > 0) this.lastByteAt = performance.now();
    if (partial.bytes === req.size) this.report();
    return wait;
  }

  /** file: URLs (air-gapped catalogs, mirrors on a mounted disk) take the same path minus the network. */
  private async copyFile(): Promise<void> {
    const { req, partial } = this;
    const path = fileURLToPath(req.url);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (err) {
      throw new UnavailableError(`Cannot read ${path}`, {
        detail: `${redactUrl(req.url)}: ${(err as Error).message}`,
        hint: "check the file URL in the catalog (CASTRA_CATALOG) or the mirror (CASTRA_MIRROR)",
        cause: err,
      });
    }
    if (size !== req.size) throw sizeMismatch(req, size);
    req.onEvent?.({
      type: "download-start",
      url: redactUrl(req.url),
      bytes: req.size,
      resumeFrom: partial.bytes,
      attempt: 1,
    });
    const stream = createReadStream(path, {
      start: partial.bytes,
      highWaterMark: 1 << 20,
      signal: req.signal,
    });
    for await (const chunk of stream) await this.take(chunk as Buffer);
  }
}

function sizeMismatch(req: DownloadRequest, announced: number): DataError {
  return new DataError(`Size mismatch for ${redactUrl(req.url)}`, {
    detail: `the server announces ${announced} bytes, the catalog expects ${req.size}; nothing was kept`,
    hint: "the URL or mirror serves a different file: check CASTRA_MIRROR and CASTRA_CATALOG, then run again",
  });
}

function webPage(req: DownloadRequest, contentType: string): DataError {
  return new DataError(`${new URL(req.url).host} sent a web page instead of the image`, {
    detail: `GET ${redactUrl(req.url)} answered with Content-Type: ${contentType} (a captive portal or a sign-in page?); nothing was kept`,
    hint: "open the URL in a browser to sign in to the network, or set CASTRA_MIRROR=URL to a reachable mirror, then run again",
  });
}

function mismatch(req: DownloadRequest, actual: string): DataError {
  return new DataError(`Checksum mismatch for ${redactUrl(req.url)}`, {
    detail: `expected sha256 ${req.sha256} (${req.size} bytes)\nactual   ${actual}\nThe download was deleted.`,
    hint: "the URL or mirror serves a different file: check CASTRA_MIRROR and CASTRA_CATALOG, then run again",
  });
}

function interrupted(req: DownloadRequest, kept: number): InterruptedError {
  return new InterruptedError("Download interrupted", {
    detail: `kept ${formatBytes(kept)} of ${formatBytes(req.size)} in ${req.dest}`,
    hint: "run the same command again to resume the download",
  });
}
