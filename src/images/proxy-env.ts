import { BlockList, isIP } from "node:net";
import { UsageError } from "../errors.js";
import { redactUrl } from "./redact-url.js";

/** The HTTP proxy a request goes through, as the environment names it. */
export interface HttpProxy {
  host: string;
  port: number;
  /** `Basic …` from `user:password@` in the proxy URL (percent-decoded), sent only to the proxy. */
  authorization?: string;
  /** The variable it came from, as set: `https_proxy`, `HTTPS_PROXY`... */
  variable: string;
  /** The proxy URL as castra shows it: credentials redacted. */
  shown: string;
}

/** Picks the proxy for a URL, or none; tests and the downloader hand it to the HTTP client. */
export type ProxyResolver = (target: URL) => HttpProxy | undefined;

/**
 * The proxy for `target` from the environment, or undefined when it goes direct (README, "Proxies"):
 * `https_proxy`/`HTTPS_PROXY` for https, `http_proxy`/`HTTP_PROXY` for http, unless `no_proxy`/`NO_PROXY`
 * covers the host. As curl does, the lower-case form wins when both are set; unlike curl, upper-case
 * HTTP_PROXY counts too (curl ignores it because CGI programs receive it from a request header).
 */
export function proxyFor(target: URL, env: NodeJS.ProcessEnv): HttpProxy | undefined {
  const scheme = target.protocol.replace(/:$/, "");
  if (scheme !== "http" && scheme !== "https") return undefined;
  const chosen = firstSet(env, `${scheme}_proxy`);
  if (!chosen) return undefined;
  const exempt = firstSet(env, "no_proxy");
  if (exempt && bypassesProxy(target, exempt.value)) return undefined;
  return parseProxy(chosen.name, chosen.value);
}

/** The lower-case variable when it is set and not empty, else the upper-case one. */
function firstSet(env: NodeJS.ProcessEnv, lower: string): { name: string; value: string } | undefined {
  for (const name of [lower, lower.toUpperCase()]) {
    const value = env[name]?.trim();
    if (value) return { name, value };
  }
  return undefined;
}

/** `http://[user:password@]host[:port]`; a value without a scheme is taken as http, as curl does. */
export function parseProxy(variable: string, value: string): HttpProxy {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  const shown = redactUrl(text);
  const refuse = (problem: string) =>
    new UsageError(`${variable} is not a usable proxy: ${problem}`, {
      detail: `${variable}=${shown}`,
      hint: `set ${variable}=http://HOST:PORT (with USER:PASSWORD@ before the host if the proxy asks for it), or unset it`,
    });
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw refuse("it is not a URL");
  }
  if (url.protocol !== "http:")
    throw refuse(`castra talks to proxies in plain HTTP (http://), not ${url.protocol.replace(/:$/, "")}`);
  if (!url.hostname) throw refuse("it names no host");
  let authorization: string | undefined;
  if (url.username || url.password) {
    let credentials: string;
    try {
      credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    } catch {
      throw refuse("its user name or password has a malformed %-escape");
    }
    authorization = `Basic ${Buffer.from(credentials).toString("base64")}`;
  }
  return { host: bareHost(url.hostname), port: Number(url.port) || 80, authorization, variable, shown };
}

/**
 * Whether a NO_PROXY list exempts `target`: entries separated by commas or spaces, each `*` (everything),
 * a domain (`example.com` and `.example.com` both cover the domain and its sub-domains), an IP address or
 * CIDR block, any of them with `:port` to exempt that port only.
 */
export function bypassesProxy(target: URL, noProxy: string): boolean {
  const host = bareHost(target.hostname).toLowerCase().replace(/\.$/, "");
  const port = Number(target.port) || (target.protocol === "https:" ? 443 : 80);
  const family = isIP(host);
  for (const raw of noProxy.toLowerCase().split(/[\s,]+/)) {
    if (raw === "*") return true;
    const entry = splitPort(raw);
    if (!entry.host || (entry.port !== undefined && entry.port !== port)) continue;
    if (family !== 0) {
      if (addressMatches(host, family, entry.host)) return true;
      continue;
    }
    const domain = entry.host.replace(/^\*?\./, "").replace(/\.$/, "");
    if (domain && (host === domain || host.endsWith(`.${domain}`))) return true;
  }
  return false;
}

/** `host`, `host:port`, `[v6]`, `[v6]:port`, `v6`, `a.b.c.d/n`: the port is split off where there is one. */
function splitPort(entry: string): { host: string; port?: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) return { host: bracketed[1] ?? "", port: bracketed[2] ? Number(bracketed[2]) : undefined };
  const withPort = /^([^:]+):(\d+)$/.exec(entry);
  if (withPort) return { host: withPort[1] ?? "", port: Number(withPort[2]) };
  return { host: entry };
}

/** An IP target matches the same address, or a CIDR block that holds it. */
function addressMatches(host: string, family: number, entry: string): boolean {
  const [address = "", prefix] = entry.split("/");
  const entryFamily = isIP(address);
  if (entryFamily !== family) return false;
  const type = family === 4 ? "ipv4" : "ipv6";
  const list = new BlockList();
  const bits = prefix === undefined ? (family === 4 ? 32 : 128) : Number(prefix);
  if (!Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128)) return false;
  list.addSubnet(address, bits, type);
  return list.check(host, type);
}

/** `[::1]` as URL.hostname writes it → `::1`. */
function bareHost(hostname: string): string {
  return hostname.replace(/^\[(.*)\]$/, "$1");
}
