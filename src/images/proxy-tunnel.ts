import { connect as connectTcp, type Socket } from "node:net";
import { headLength, parseHead } from "./http-reply.js";
import { ProxyError, proxyConnectionError, proxyStatusError, StallError } from "./network-errors.js";
import type { HttpProxy } from "./proxy-env.js";

export interface TunnelOptions {
  /** The proxy may stay silent this long while connecting and answering the CONNECT. */
  stallTimeoutMs: number;
  signal?: AbortSignal;
}

/** `host:port` as a CONNECT request names it (an IPv6 address in brackets). */
export function authorityOf(target: URL): string {
  return `${target.hostname}:${Number(target.port) || (target.protocol === "https:" ? 443 : 80)}`;
}

/**
 * Connects to the proxy and asks it for a tunnel to `target` (`CONNECT host:port`). Resolves with the raw
 * socket, paused, once the proxy answered 2xx: TLS to the origin runs inside it. Every failure of the proxy
 * is a ProxyError; an abort rejects with "aborted".
 */
export function openTunnel(proxy: HttpProxy, target: URL, options: TunnelOptions): Promise<Socket> {
  const authority = authorityOf(target);
  return new Promise((resolve, reject) => {
    const socket = connectTcp({ host: proxy.host, port: proxy.port });
    let head = Buffer.alloc(0);
    const listeners = {
      timeout: () => settle(proxyConnectionError(proxy, new StallError(options.stallTimeoutMs))),
      error: (err: Error) => settle(proxyConnectionError(proxy, err)),
      close: () => settle(new ProxyError(proxy, "closed the connection before answering")),
      connect: () => socket.write(connectRequest(proxy, authority)),
      data: (data: Buffer) => onData(data),
    };
    const settle = (err?: Error) => {
      for (const [event, listener] of Object.entries(listeners)) socket.off(event, listener);
      options.signal?.removeEventListener("abort", abort);
      if (!err) return resolve(socket);
      socket.destroy();
      reject(err);
    };
    const abort = () => settle(new Error("aborted"));
    if (options.signal?.aborted) return abort();
    options.signal?.addEventListener("abort", abort, { once: true });
    socket.setTimeout(options.stallTimeoutMs);
    for (const [event, listener] of Object.entries(listeners)) socket.on(event, listener);
    const onData = (data: Buffer) => {
      head = Buffer.concat([head, data]);
      let length: number;
      let status: number;
      let reason: string;
      try {
        length = headLength(head);
        if (length < 0) return;
        ({ statusCode: status, statusMessage: reason } = parseHead(head.subarray(0, length)));
      } catch (err) {
        return settle(new ProxyError(proxy, "does not speak HTTP", undefined, { cause: err }));
      }
      if (status < 200 || status >= 300) return settle(proxyStatusError(proxy, status, reason, authority));
      // The origin speaks only after our TLS hello: anything here came from the proxy, not through it.
      if (head.length > length) return settle(new ProxyError(proxy, "sent data before the tunnel opened"));
      socket.pause();
      socket.setTimeout(0);
      settle();
    };
  });
}

function connectRequest(proxy: HttpProxy, authority: string): string {
  const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`];
  if (proxy.authorization) lines.push(`Proxy-Authorization: ${proxy.authorization}`);
  lines.push("", "");
  return lines.join("\r\n");
}
