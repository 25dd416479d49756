import { createServer, type Server, type Socket } from "node:net";
import { METADATA_BOUNDS, type MetadataBounds } from "./bounds.js";
import type { MetadataContent } from "./ec2.js";
import type { MetadataLog } from "./log.js";
import { serveConnection } from "./responder.js";

export interface MetadataServer {
  server: Server;
  /** Connections being served now. */
  openConnections(): number;
  /** Stops accepting, cuts every open connection, and resolves once each is logged. */
  close(): Promise<void>;
}

export interface MetadataServerOptions {
  bounds?: MetadataBounds;
  now?: () => number;
}

/**
 * One VM's metadata service: each connection the connector relays is one request, answered from `content`.
 * Admission comes first: beyond `maxConnections` open at once, a connection is closed unanswered before a
 * byte of it is read, and logged.
 */
export function createMetadataServer(
  content: MetadataContent,
  log: MetadataLog,
  options: MetadataServerOptions = {},
): MetadataServer {
  const bounds = options.bounds ?? METADATA_BOUNDS;
  const open = new Set<Socket>();
  const serving = new Set<Promise<void>>();
  const refusals = refusalCounter(log, bounds.maxConnections);
  // Half-open: a guest that stops sending after its request (nc, or a half-close) still gets its answer.
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    // A guest that vanishes mid-answer is routine; without a listener its error would end the server.
    socket.on("error", () => {});
    if (open.size >= bounds.maxConnections) {
      socket.destroy();
      refusals.count();
      return;
    }
    open.add(socket);
    socket.once("close", () => open.delete(socket));
    const done = serveConnection(socket, content, { bounds, now: options.now }).then((served) => {
      if (served) log.served(served);
      serving.delete(done);
    });
    serving.add(done);
  });
  return {
    server,
    openConnections: () => open.size,
    close: async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of open) socket.destroy();
      await Promise.all([closed, ...serving]);
      refusals.flush();
    },
  };
}

/** How often refusals at capacity are summed up: a guest flooding the service cannot flood the log too. */
const REFUSAL_WINDOW_MS = 1000;

/** Logs the first refusal at once, then one line per second with how many more there were. */
function refusalCounter(log: MetadataLog, limit: number) {
  let pending = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (pending > 0) log.note(`refused ${pending} more connection${pending === 1 ? "" : "s"}: ${limit} open`);
    pending = 0;
  };
  return {
    count() {
      if (timer) {
        pending += 1;
        return;
      }
      log.note(`refused a connection: ${limit} open, the most served at once`);
      timer = setTimeout(flush, REFUSAL_WINDOW_MS);
      timer.unref();
    },
    flush,
  };
}
