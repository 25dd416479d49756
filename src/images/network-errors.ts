import { UnavailableError } from "../errors.js";
import { formatBytes } from "../host/bytes.js";
import type { HttpProxy } from "./proxy-env.js";
import { redactUrl } from "./redact-url.js";

/** An HTTP reply other than 200/206/416 (after redirects). */
export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly statusText: string,
  ) {
    super(`HTTP ${status} ${statusText}`.trim());
  }
}

/** No byte arrived for the stall timeout. */
export class StallError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no data for ${timeoutMs / 1000} s`);
  }
}

/** A transfer ran past its deadline: slower than the minimum rate, though never silent for the stall timeout. */
export class DeadlineError extends Error {
  constructor(
    readonly limitMs: number,
    readonly minBytesPerSecond: number,
  ) {
    super(`not done after ${(limitMs / 1000).toFixed(1)} s`);
  }
}

/** The proxy, not the server behind it, failed: refused, unreachable, silent, or answered with an error. */
export class ProxyError extends Error {
  constructor(
    readonly proxy: HttpProxy,
    /** What the proxy did, after its name: "refused the connection". */
    readonly what: string,
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(`proxy ${proxy.shown} ${what}`, options);
  }
}

/** A failure of the connection to the proxy itself, in words. */
export function proxyConnectionError(proxy: HttpProxy, err: unknown): ProxyError {
  if (err instanceof StallError)
    return new ProxyError(proxy, `did not answer for ${err.timeoutMs / 1000} s`, undefined, { cause: err });
  const code = errorCode(err);
  const what =
    code === "ECONNREFUSED"
      ? "refused the connection"
      : DNS_CODES.has(code)
        ? `cannot be found: its host name does not resolve (${code})`
        : code
          ? `cannot be reached (${code})`
          : `failed: ${err instanceof Error ? err.message : String(err)}`;
  return new ProxyError(proxy, what, undefined, { cause: err });
}

/** The proxy answered an error status: 407 to a GET or a CONNECT, or any other non-2xx to a CONNECT. */
export function proxyStatusError(
  proxy: HttpProxy,
  status: number,
  reason: string,
  tunnelTo: string,
): ProxyError {
  const said = `HTTP ${status}${reason ? ` ${reason}` : ""}`;
  if (status !== 407) return new ProxyError(proxy, `refused a tunnel to ${tunnelTo} (${said})`, status);
  const what = proxy.authorization ? `refused its credentials (${said})` : `asks for credentials (${said})`;
  return new ProxyError(proxy, what, status);
}

/** The connection went away mid-stream or the server had a passing failure: worth another try. */
export class TransientError extends Error {}

const RESET_CODES = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "ERR_STREAM_PREMATURE_CLOSE",
  "UND_ERR_SOCKET",
]);
const DNS_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_NODATA", "EAI_NONAME", "EAI_FAIL"]);
const UNREACHABLE_CODES = new Set(["EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "EHOSTDOWN", "ETIMEDOUT"]);

function errorCode(err: unknown): string {
  return String((err as NodeJS.ErrnoException)?.code ?? "");
}

function isTlsError(err: unknown): boolean {
  const code = errorCode(err);
  return (
    code.startsWith("ERR_TLS_") ||
    code.startsWith("ERR_SSL_") ||
    code.startsWith("CERT_") ||
    code === "EPROTO" ||
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)
  );
}

/** Whether a failed attempt deserves a retry: resets, 5xx, 408 and 429; never other 4xx, DNS, TLS, a stall or a proxy. */
export function isRetriable(err: unknown): boolean {
  if (err instanceof TransientError) return true;
  if (err instanceof ProxyError) return false;
  if (err instanceof HttpStatusError) return err.status >= 500 || err.status === 408 || err.status === 429;
  if (err instanceof StallError || err instanceof DeadlineError) return false;
  return RESET_CODES.has(errorCode(err)) || (err as Error)?.message === "aborted";
}

const NETWORK_HINT =
  "check the network connection, or set CASTRA_MIRROR=URL to a reachable mirror; with the image copied into " +
  ".castra/images/<id>/<version>/ beforehand, --offline needs no network";

/**
 * One specific, actionable error per way a download can fail on the network (exit 69). `via` is the proxy the
 * request went through, named in the detail.
 */
export function networkError(
  err: unknown,
  requested: string,
  progress: { received: number; total: number },
  via?: HttpProxy,
): UnavailableError {
  const { host, hostname } = new URL(requested);
  const got = `received ${formatBytes(progress.received)} of ${formatBytes(progress.total)}`;
  if (err instanceof ProxyError) return proxyFailure(err, redactUrl(requested), got);
  const url = via
    ? `${redactUrl(requested)} (through the proxy ${via.shown} from ${via.variable})`
    : redactUrl(requested);
  const code = errorCode(err);
  const reason = err instanceof Error ? err.message : String(err);
  if (err instanceof HttpStatusError) {
    const missing = err.status === 404 || err.status === 410;
    return new UnavailableError(`Download failed: ${host} answered HTTP ${err.status}`, {
      detail: `GET ${url}\n→ ${err.message}`,
      hint: missing
        ? "the file is not on that server: check the URL in the catalog (CASTRA_CATALOG) or the mirror (CASTRA_MIRROR)"
        : err.status >= 500
          ? `the server failed; try again later, or set CASTRA_MIRROR=URL to another mirror`
          : `the server refused the request; check access to ${host}, or set CASTRA_MIRROR=URL`,
      cause: err,
    });
  }
  if (err instanceof StallError) {
    return new UnavailableError(`Download from ${host} stalled`, {
      detail: `${url}: ${err.message} (${got}); the .partial file is kept, the next run resumes it`,
      hint: NETWORK_HINT,
      cause: err,
    });
  }
  if (err instanceof DeadlineError) {
    const rate = `${formatBytes(err.minBytesPerSecond)}/s`;
    return new UnavailableError(`Download from ${host} is too slow`, {
      detail:
        `${url}: ${got} in ${(err.limitMs / 1000).toFixed(1)} s, all the time a transfer of this size may take at the ` +
        `minimum rate of ${rate}; the .partial file is kept, the next run resumes it`,
      hint: `on a slow link, set CASTRA_MIN_RATE to a lower rate in KiB/s; or set CASTRA_MIRROR=URL to a faster mirror`,
      cause: err,
    });
  }
  if (DNS_CODES.has(code)) {
    return new UnavailableError(`Cannot resolve ${hostname}`, {
      detail: `DNS lookup failed (${code}) for ${url}`,
      hint: NETWORK_HINT,
      cause: err,
    });
  }
  if (code === "ECONNREFUSED") {
    return new UnavailableError(`Connection refused by ${host}`, {
      detail: `nothing accepts connections at ${host} (${url})`,
      hint: NETWORK_HINT,
      cause: err,
    });
  }
  if (isTlsError(err)) {
    return new UnavailableError(`TLS connection to ${host} failed`, {
      detail: `${code || "TLS"}: ${reason}`,
      hint: `check the system clock and CA certificates, or set CASTRA_MIRROR=URL to a mirror you trust`,
      cause: err,
    });
  }
  if (UNREACHABLE_CODES.has(code)) {
    return new UnavailableError(`Cannot reach ${host}`, {
      detail: `${code}: ${reason}`,
      hint: NETWORK_HINT,
      cause: err,
    });
  }
  if (isRetriable(err)) {
    return new UnavailableError(`Connection to ${host} kept breaking`, {
      detail: `${url}: ${code || reason} (${got}); the .partial file is kept, the next run resumes it`,
      hint: NETWORK_HINT,
      cause: err,
    });
  }
  return new UnavailableError(`Download from ${host} failed`, {
    detail: `${url}: ${code ? `${code}: ` : ""}${reason}`,
    hint: NETWORK_HINT,
    cause: err,
  });
}

/** The proxy named (redacted) with the variable that set it, and what to change. */
function proxyFailure(err: ProxyError, url: string, got: string): UnavailableError {
  const { proxy } = err;
  const address = `${proxy.host.includes(":") ? `[${proxy.host}]` : proxy.host}:${proxy.port}`;
  const hint =
    err.status === 407
      ? proxy.authorization
        ? `check the user name and password in ${proxy.variable} (percent-encode @, : and / in them)`
        : `put the proxy's user name and password in ${proxy.variable}: http://USER:PASSWORD@${address}`
      : `check ${proxy.variable} and that the proxy runs, or list the host in NO_PROXY to reach it directly`;
  return new UnavailableError(`Proxy ${proxy.shown} (from ${proxy.variable}) ${err.what}`, {
    detail: `it is the proxy for ${url} (${got})`,
    hint,
    cause: err,
  });
}
