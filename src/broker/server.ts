import { createServer, type Socket } from "node:net";

/** VM names as castra.toml allows them. */
const VM_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const MAX_LINE_BYTES = 512;
/** A guest connection that sends nothing this long is closed (its relay ends with it). */
export const BROKER_IDLE_TIMEOUT_MS = 5 * 60_000;
const MAX_CONNECTIONS = 64;

export const BROKER_GREETING = "castra host broker: send `hello <vm>` to report in";

export interface BrokerServerOptions {
  /** The unix socket it listens on; QEMU relays each guest connection to it. */
  socketPath: string;
  /** One line per event (connection, hello, close) for logs/broker.log. */
  log: (line: string) => void;
  /** Called for each `hello <vm>`; the reply waits until it is recorded. */
  onHello: (vm: string, from: string) => Promise<void>;
}

export interface BrokerServer {
  /** Stops listening and ends every open connection. */
  close(): Promise<void>;
}

/**
 * The host broker: a line protocol on a unix socket in the project's private `run/`. Nothing on the host's
 * loopback, which every guest on the machine reaches through its gateway: only this project's guests get
 * here, each through the `guestfwd` relay of its own QEMU.
 */
export function startBrokerServer(options: BrokerServerOptions): Promise<BrokerServer> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    serve(socket, options);
  });
  server.maxConnections = MAX_CONNECTIONS;
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ path: options.socketPath }, () => {
      server.off("error", reject);
      resolve({ close });
    });
  });
}

/** Connections are numbered: a unix socket has no peer address to tell them apart in the log. */
let connections = 0;

function serve(socket: Socket, options: BrokerServerOptions): void {
  connections += 1;
  const from = `connection #${connections}`;
  options.log(`${from} opened`);
  socket.setEncoding("utf8");
  socket.setTimeout(BROKER_IDLE_TIMEOUT_MS, () => socket.end("bye: idle\n"));
  socket.on("error", () => {}); // A guest vanishing mid-line is normal; "close" below logs it.
  socket.on("close", () => options.log(`${from} closed`));
  socket.write(`${BROKER_GREETING}\n`);
  let buffer = "";
  let queue = Promise.resolve();
  socket.on("data", (chunk: string) => {
    buffer += chunk;
    if (Buffer.byteLength(buffer) > MAX_LINE_BYTES && !buffer.includes("\n")) {
      socket.end("error: line too long\n");
      return;
    }
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      // Answers go out in request order even though recording a hello is asynchronous.
      queue = queue
        .then(() => answer(line, from, options))
        .then((reply) => {
          if (reply && !socket.destroyed) socket.write(`${reply}\n`);
        });
    }
  });
}

async function answer(line: string, from: string, options: BrokerServerOptions): Promise<string | undefined> {
  if (line === "") return undefined;
  const [command = "", ...args] = line.split(/\s+/);
  if (command === "ping") return "pong";
  if (command !== "hello")
    return `error: unknown command ${JSON.stringify(command.slice(0, 32))} (try: hello <vm>)`;
  const vm = args[0] ?? "";
  if (args.length !== 1 || !VM_NAME.test(vm)) return "error: usage: hello <vm>";
  try {
    await options.onHello(vm, from);
  } catch (err) {
    options.log(`cannot record hello from vm ${vm}: ${(err as Error).message}`);
    return "error: cannot record the hello";
  }
  options.log(`vm ${vm} said hello (${from}): reachable`);
  return `ok: hello ${vm}`;
}
