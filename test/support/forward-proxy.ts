import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";

/** A request the proxy received: a CONNECT's `host:port`, or a GET's absolute URL. */
export interface ProxiedRequest {
  method: string;
  target: string;
  /** The Proxy-Authorization header as sent, if any. */
  authorization?: string;
}

export interface ForwardProxyOptions {
  /** Host names only this proxy knows, and the address each stands for. */
  hosts: Record<string, string>;
  /** Basic credentials it requires (407 without them). */
  auth?: { user: string; password: string };
}

/**
 * A small HTTP forward proxy on 127.0.0.1, as a corporate one behaves: absolute-form GETs for http, CONNECT
 * tunnels for https, optional Basic authentication. It resolves names only from its own table, so a catalog
 * host that does not resolve anywhere else is reachable through it alone.
 */
export class ForwardProxy {
  readonly requests: ProxiedRequest[] = [];
  private readonly sockets = new Set<Socket>();
  private dropAfter: number | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly options: ForwardProxyOptions,
  ) {}

  static async start(options: ForwardProxyOptions): Promise<ForwardProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const proxy = new ForwardProxy(server, (server.address() as AddressInfo).port, options);
    server.on("connection", (socket) => proxy.accept(socket));
    return proxy;
  }

  /** `http://[user:password@]127.0.0.1:port`, credentials percent-encoded as a user would write them. */
  url(credentials?: { user: string; password: string }): string {
    const userinfo = credentials
      ? `${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.password)}@`
      : "";
    return `http://${userinfo}127.0.0.1:${this.port}`;
  }

  /** The next reply relayed to a client is cut after this many bytes (a proxy dropping a connection once). */
  dropOnce(bytes: number): void {
    this.dropAfter = bytes;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => {});
  }

  private accept(client: Socket): void {
    this.track(client);
    let head = Buffer.alloc(0);
    const onData = (data: Buffer) => {
      head = Buffer.concat([head, data]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      client.off("data", onData);
      client.pause();
      this.handle(client, head.subarray(0, end).toString("latin1"), head.subarray(end + 4));
    };
    client.on("data", onData);
  }

  private handle(client: Socket, head: string, rest: Buffer): void {
    const [requestLine = "", ...fields] = head.split("\r\n");
    const [method = "", target = ""] = requestLine.split(" ");
    const header = (name: string) =>
      fields.find((f) => f.toLowerCase().startsWith(`${name}:`))?.replace(/^[^:]*:\s*/, "");
    const authorization = header("proxy-authorization");
    this.requests.push({ method, target, authorization });
    const { auth } = this.options;
    if (auth && authorization !== `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString("base64")}`)
      return void client.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="castra test"\r\n' +
          "Content-Length: 0\r\nConnection: close\r\n\r\n",
      );
    if (method === "CONNECT") {
      const [host = "", port = ""] = target.split(/:(?=\d+$)/);
      this.relay(client, host, Number(port), "HTTP/1.1 200 Connection Established\r\n\r\n", rest);
      return;
    }
    if (!/^http:\/\//.test(target)) return void client.end("HTTP/1.1 400 Bad Request\r\n\r\n");
    const url = new URL(target);
    // The origin gets an ordinary origin-form request; the proxy's own headers stay with the proxy.
    const kept = fields.filter((f) => !/^proxy-(authorization|connection):/i.test(f));
    const request = [`${method} ${url.pathname}${url.search} HTTP/1.1`, ...kept, "", ""].join("\r\n");
    this.relay(
      client,
      url.hostname,
      Number(url.port) || 80,
      undefined,
      Buffer.concat([Buffer.from(request), rest]),
    );
  }

  /** Connects to `host:port` (from the table only) and relays both ways, cutting the reply once if asked. */
  private relay(
    client: Socket,
    host: string,
    port: number,
    greeting: string | undefined,
    first: Buffer,
  ): void {
    const address = this.options.hosts[host];
    if (!address) return void client.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    const upstream = connect({ host: address, port });
    this.track(upstream);
    upstream.on("error", () => client.destroy());
    upstream.on("connect", () => {
      if (greeting) client.write(greeting);
      if (first.length > 0) upstream.write(first);
      client.pipe(upstream);
      client.resume();
    });
    let budget = this.dropAfter;
    this.dropAfter = undefined;
    upstream.on("data", (data: Buffer) => {
      if (budget === undefined) return void client.write(data);
      client.write(data.subarray(0, budget));
      budget -= Math.min(budget, data.length);
      if (budget === 0) {
        upstream.destroy();
        client.destroy();
      }
    });
    upstream.on("end", () => client.end());
    client.on("close", () => upstream.destroy());
  }
}
