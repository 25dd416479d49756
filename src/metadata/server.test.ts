import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  exchange,
  get,
  logOnceItHas,
  startTestService,
  testResponderConfig,
  waitFor,
} from "../../test/support/metadata.js";
import { METADATA_BOUNDS, type MetadataBounds } from "./bounds.js";

// The bounds one VM's server holds a guest to: connections at once, read and write deadlines, request size.
const dir = await mkdtemp(join(tmpdir(), "castra-imds-server-"));
after(() => rm(dir, { recursive: true, force: true }));

let services = 0;
function start(bounds: Partial<MetadataBounds>, userData?: Buffer) {
  services += 1;
  const config = testResponderConfig(dir, { logPath: join(dir, "logs", `server-${services}.log`) });
  return startTestService(dir, { config, userData }, { ...METADATA_BOUNDS, ...bounds });
}

/** A connection that is open and has sent nothing; resolves once connected. */
function idleConnection(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPath }, () => resolve(socket));
    socket.on("error", reject);
  });
}

/** What the server sent before closing a connection, and how long that took. */
function untilClosed(socket: Socket): Promise<{ bytes: number; ms: number }> {
  const began = performance.now();
  let bytes = 0;
  socket.on("data", (d) => (bytes += d.length));
  return new Promise((resolve) =>
    socket.on("close", () => resolve({ bytes, ms: performance.now() - began })),
  );
}

test("beyond the connection cap a connection is closed at once, unanswered, and the refusals are logged", async () => {
  const service = await start({ maxConnections: 3 });
  try {
    const held = await Promise.all([1, 2, 3].map(() => idleConnection(service.socketPath)));
    await waitFor(async () => (service.openConnections() === 3 ? true : undefined));
    const refused = await Promise.all(
      [1, 2, 3, 4, 5].map(async () => untilClosed(await idleConnection(service.socketPath))),
    );
    for (const r of refused) {
      assert.equal(r.bytes, 0);
      assert.ok(r.ms < 1000, `a refused connection stayed open ${r.ms} ms`);
    }
    const log = await logOnceItHas(service.logPath, /refused 4 more connections: 3 open/);
    assert.match(log, /refused a connection: 3 open, the most served at once\n/);
    // Once the guest lets go, the next request is served.
    for (const socket of held) socket.destroy();
    await waitFor(async () => (service.openConnections() === 0 ? true : undefined));
    assert.equal((await exchange(service.socketPath, get("/latest/meta-data/hostname"))).status, 200);
  } finally {
    await service.close();
  }
});

test("a request trickled in byte by byte gets 408 at the read deadline, however long it keeps trickling", async () => {
  const service = await start({ readTimeoutMs: 300 });
  try {
    const socket = await idleConnection(service.socketPath);
    const closed = untilClosed(socket);
    let answer = "";
    socket.on("data", (d) => (answer += d));
    socket.write("GET /latest/meta-data/hostname HTTP/1.0\r\nX-Slow: ");
    const trickle = setInterval(() => socket.writable && socket.write("x"), 20);
    const { ms } = await closed;
    clearInterval(trickle);
    assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.ok(ms >= 250 && ms < 2000, `closed after ${ms} ms`);
    assert.match(
      await logOnceItHas(service.logPath, / 408 /),
      /GET \/latest\/meta-data\/hostname 408 \d+B \d+ms refused: request not received within 300 ms\n/,
    );
  } finally {
    await service.close();
  }
});

test("a guest that never reads a large answer is cut off at the write deadline, and it is logged", async () => {
  const userData = Buffer.alloc(20 * 1024 * 1024, "u");
  const service = await start({ writeTimeoutMs: 400 }, userData);
  try {
    const socket = await idleConnection(service.socketPath);
    socket.pause();
    const began = performance.now();
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("error", () => {});
    socket.write(get("/latest/user-data"));
    await waitFor(async () => (service.openConnections() === 0 ? true : undefined));
    const ms = performance.now() - began;
    assert.ok(ms >= 350 && ms < 3000, `the server let go after ${ms} ms`);
    const log = await logOnceItHas(service.logPath, /user-data/);
    assert.match(
      log,
      /GET \/latest\/user-data 200 20971520B \d+ms refused: answer not taken within 400 ms, connection closed\n/,
    );
    socket.resume();
    await closed;
  } finally {
    await service.close();
  }
});

test("oversized requests are refused with their status and the bound in the log", async () => {
  const service = await start({ maxHeaderBytes: 1024, maxBodyBytes: 64 });
  try {
    const big = await exchange(service.socketPath, `GET / HTTP/1.0\r\nX-Big: ${"a".repeat(2000)}\r\n\r\n`);
    assert.equal(big.status, 431);
    const body = "PUT /latest/api/token HTTP/1.0\r\nContent-Length: 65\r\n\r\n";
    assert.equal((await exchange(service.socketPath, body)).status, 413);
    const log = await logOnceItHas(service.logPath, / 413 /);
    assert.match(log, /GET \/ 431 \d+B \d+ms refused: request headers over 1024 bytes\n/);
    assert.match(log, /PUT \/latest\/api\/token 413 \d+B \d+ms refused: request body over 64 bytes\n/);
  } finally {
    await service.close();
  }
});

test("closing the server cuts every open connection", async () => {
  const service = await start({});
  const socket = await idleConnection(service.socketPath);
  const closed = untilClosed(socket);
  await waitFor(async () => (service.openConnections() === 1 ? true : undefined));
  await service.close();
  assert.equal((await closed).bytes, 0);
});

test("closing the server while a request is half read does not wait for the read deadline", async () => {
  const service = await start({});
  const socket = await idleConnection(service.socketPath);
  socket.write("GET /latest/meta-data/hostname HTTP/1.0\r\n");
  await waitFor(async () => (service.openConnections() === 1 ? true : undefined));
  const began = performance.now();
  await service.close();
  assert.ok(performance.now() - began < 1000, `close took ${performance.now() - began} ms`);
  socket.destroy();
});
