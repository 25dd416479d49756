import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  exchange,
  type GuestfwdBridge,
  get,
  logOnceItHas,
  putToken,
  startGuestfwdBridge,
  startTestService,
  type TestService,
  testResponderConfig,
  waitFor,
} from "../../test/support/metadata.js";
import { BROKER_GREETING, BROKER_IDLE_TIMEOUT_MS, startBrokerServer } from "../broker/server.js";
import { findOnPath } from "../host/tools.js";
import { METADATA_BOUNDS, type MetadataBounds } from "../metadata/bounds.js";
import { connectorArgv } from "./connector.js";

// The perl connector between a client (the guest, as libslirp hands it over) and a metadata server.
const perl = await findOnPath("perl");
const dir = await mkdtemp(join(tmpdir(), "castra-connector-"));
after(() => rm(dir, { recursive: true, force: true }));

const USER_DATA = Buffer.concat([Buffer.from("#!/bin/sh\r\necho hi\r\n"), Buffer.from([0, 13, 255, 10, 0])]);
const BOUNDS: MetadataBounds = { ...METADATA_BOUNDS, readTimeoutMs: 1000, writeTimeoutMs: 3000 };

let count = 0;
/** A server (in `socketDir`) and a bridge that runs the connector for each connection, as QEMU would. */
async function setup(options: { userData?: Buffer; bounds?: MetadataBounds; socketDir?: string } = {}) {
  count += 1;
  const socketDir = options.socketDir ?? dir;
  const config = testResponderConfig(dir, { logPath: join(dir, "logs", `connector-${count}.log`) });
  const bounds = options.bounds ?? BOUNDS;
  const service = await startTestService(
    socketDir,
    { config, userData: options.userData ?? USER_DATA },
    bounds,
  );
  const argv = connectorArgv({ perlPath: perl as string, socketPath: service.socketPath, ...bounds });
  const bridge = await startGuestfwdBridge(argv);
  return { service, bridge };
}

/** Resolves how many bytes arrived once the connection closed. */
function untilClosed(socket: Socket): Promise<number> {
  let bytes = 0;
  socket.on("data", (d) => (bytes += d.length));
  return new Promise((resolve) => socket.on("close", () => resolve(bytes)));
}

/** Waits until the bridge started a connector and every one it started has exited; resolves their lifetimes. */
async function connectorsGone(bridge: GuestfwdBridge, timeoutMs = 10_000): Promise<number[]> {
  const allGone = () => bridge.spawned.length > 0 && bridge.spawned.every((s) => s.exitedAt !== undefined);
  await waitFor(async () => (allGone() ? true : undefined), timeoutMs);
  return bridge.spawned.map((s) => (s.exitedAt ?? 0) - s.startedAt);
}

describe("the connector", { skip: !perl && "perl not installed" }, () => {
  let service: TestService;
  let bridge: GuestfwdBridge;
  before(async () => ({ service, bridge } = await setup()));
  after(async () => {
    await bridge.close();
    await service.close();
  });

  test("relays nc-style requests (no half-close) and half-closing ones; the answers arrive byte for byte", async () => {
    const issued = await exchange(bridge.port, putToken("5"));
    assert.equal(issued.status, 200);
    const token = issued.body.toString();
    const hostname = await exchange(
      bridge.port,
      get("/latest/meta-data/hostname", { "X-aws-ec2-metadata-token": token }),
    );
    assert.equal(hostname.body.toString(), "devbox");
    const userData = await exchange(bridge.port, get("/latest/user-data"), { halfClose: true });
    assert.deepEqual(userData.body, USER_DATA);
    const wrong = await exchange(
      bridge.port,
      get("/latest/meta-data/", { "X-aws-ec2-metadata-token": `x${token}` }),
    );
    assert.equal(wrong.status, 401);
    await connectorsGone(bridge);
  });

  test("bytes sent after the request do not cost the client its answer", async () => {
    const trailing = Buffer.alloc(200_000, "z");
    const res = await exchange(
      bridge.port,
      Buffer.concat([Buffer.from(get("/latest/meta-data/instance-id")), trailing]),
    );
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), "i-0123456789abcdef0");
    await connectorsGone(bridge);
  });

  test("malformed and unfinished requests get the server's refusal through the connector", async () => {
    assert.equal((await exchange(bridge.port, "garbage\r\n\r\n")).status, 400);
    const began = performance.now();
    assert.equal((await exchange(bridge.port, "GET /latest/meta-data/ HTTP/1.0\r\n")).status, 408);
    assert.ok(performance.now() - began < 3000);
    await connectorsGone(bridge);
  });
});

describe("the connector's bounds", { skip: !perl && "perl not installed" }, () => {
  test("a connection refused at the server's cap is closed at once and its connector exits", async () => {
    const { service, bridge } = await setup({ bounds: { ...BOUNDS, maxConnections: 1 } });
    const held = connect({ path: service.socketPath });
    try {
      await waitFor(async () => (service.openConnections() === 1 ? true : undefined));
      const began = performance.now();
      const socket = connect(bridge.port, "127.0.0.1");
      socket.on("error", () => {});
      socket.write("GET /latest/meta-data/inst");
      assert.equal(await untilClosed(socket), 0);
      const [lifetime = 0] = await connectorsGone(bridge);
      assert.ok(performance.now() - began < 2000 && lifetime < 2000, `the connector lived ${lifetime} ms`);
    } finally {
      held.destroy();
      await bridge.close();
      await service.close();
    }
  });

  test("a client that never reads a large answer: the connector is gone within the write deadline", async () => {
    const { service, bridge } = await setup({ userData: Buffer.alloc(20 * 1024 * 1024, "u") });
    try {
      const socket = connect(bridge.port, "127.0.0.1");
      socket.on("error", () => {});
      socket.pause();
      socket.write(get("/latest/user-data"));
      const [lifetime = 0] = await connectorsGone(bridge);
      // The answer begins within milliseconds; the connector ends it 0.75 to 2 s before the 3 s deadline.
      assert.ok(lifetime > 900 && lifetime < BOUNDS.writeTimeoutMs, `the connector lived ${lifetime} ms`);
      await waitFor(async () => (service.openConnections() === 0 ? true : undefined));
      assert.match(
        await logOnceItHas(service.logPath, /user-data/),
        /GET \/latest\/user-data 200 20971520B \d+ms (cut short: the connection closed|refused: answer not taken)/,
      );
      socket.destroy();
    } finally {
      await bridge.close();
      await service.close();
    }
  });

  test("without a server the connection closes unanswered after a second of retries", async () => {
    const argv = connectorArgv({ perlPath: perl as string, socketPath: join(dir, "absent.sock"), ...BOUNDS });
    const bridge = await startGuestfwdBridge(argv);
    try {
      const began = performance.now();
      const socket = connect(bridge.port, "127.0.0.1");
      socket.on("error", () => {});
      socket.write(get("/latest/meta-data/"));
      assert.equal(await untilClosed(socket), 0);
      assert.ok(performance.now() - began > 900);
      await connectorsGone(bridge);
    } finally {
      await bridge.close();
    }
  });

  test("a socket path full of shell and QEMU syntax works", async () => {
    const hostile = join(dir, `it's $(touch PWNED) \`x\` "q" ;,, \\ d`);
    await mkdir(hostile);
    const { service, bridge } = await setup({ socketDir: hostile });
    try {
      assert.equal(
        (await exchange(bridge.port, get("/latest/meta-data/hostname"))).body.toString(),
        "devbox",
      );
    } finally {
      await bridge.close();
      await service.close();
    }
  });

  test("carries the broker's line protocol: its greeting first, then a hello and its answer", async () => {
    const socketPath = join(dir, "broker.sock");
    const hellos: string[] = [];
    const broker = await startBrokerServer({
      socketPath,
      log: () => {},
      onHello: async (vm) => void hellos.push(vm),
    });
    const argv = connectorArgv({
      perlPath: perl as string,
      socketPath,
      readTimeoutMs: 5_000,
      writeTimeoutMs: BROKER_IDLE_TIMEOUT_MS,
    });
    const bridge = await startGuestfwdBridge(argv);
    try {
      const socket = connect(bridge.port, "127.0.0.1");
      let received = "";
      socket.setEncoding("utf8");
      socket.on("data", (d: string) => {
        received += d;
        if (received === `${BROKER_GREETING}\n`) socket.write("hello devbox\n");
        if (received.includes("ok: hello")) socket.end();
      });
      await new Promise((resolve) => socket.on("close", resolve));
      assert.equal(received, `${BROKER_GREETING}\nok: hello devbox\n`);
      assert.deepEqual(hellos, ["devbox"]);
      await connectorsGone(bridge);
    } finally {
      await bridge.close();
      await broker.close();
    }
  });
});
