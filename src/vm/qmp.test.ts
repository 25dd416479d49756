import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { QmpClient, QmpCommandError, qmpCommand } from "./qmp.js";

const dir = await mkdtemp(join(tmpdir(), "castra-qmp-"));
after(() => rm(dir, { recursive: true, force: true }));

type Handler = (message: { execute: string; id?: string; arguments?: unknown }, socket: Socket) => void;

/** A QMP server that speaks the protocol like QEMU: greeting, capabilities, then the test's handler. */
async function fakeQmp(
  name: string,
  handler: Handler,
): Promise<{ path: string; server: Server; received: string[] }> {
  const path = join(dir, name);
  const received: string[] = [];
  const server = createServer((socket) => {
    socket.write(`${JSON.stringify({ QMP: { version: { qemu: { major: 7 } }, capabilities: [] } })}\r\n`);
    let buffer = "";
    socket.on("data", (chunk) => {
      buffer += chunk;
      for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
        const message = JSON.parse(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        received.push(message.execute);
        if (message.execute === "qmp_capabilities")
          socket.write(`${JSON.stringify({ return: {}, id: message.id })}\r\n`);
        else handler(message, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server, received };
}

const reply = (socket: Socket, value: unknown) => socket.write(`${JSON.stringify(value)}\r\n`);

test("negotiates capabilities, then matches answers to commands by id even out of order", async () => {
  const held: { id?: string }[] = [];
  const { path, server, received } = await fakeQmp("order.sock", (message, socket) => {
    held.push(message);
    if (held.length === 2) {
      // Answer the second command first, with an event in between.
      reply(socket, { return: { status: "second" }, id: held[1]?.id });
      reply(socket, { event: "RESUME", timestamp: { seconds: 1, microseconds: 0 } });
      reply(socket, { return: { status: "first" }, id: held[0]?.id });
    }
  });
  try {
    const client = await QmpClient.connect(path);
    const events: string[] = [];
    client.on("event", (e) => events.push(e.event));
    const [a, b] = await Promise.all([client.execute("query-status"), client.execute("query-name")]);
    assert.deepEqual([a, b], [{ status: "first" }, { status: "second" }]);
    assert.deepEqual(events, ["RESUME"]);
    assert.deepEqual(received, ["qmp_capabilities", "query-status", "query-name"]);
    client.close();
  } finally {
    server.close();
  }
});

test("an error answer rejects with its class and description", async () => {
  const { path, server } = await fakeQmp("error.sock", (message, socket) =>
    reply(socket, {
      error: { class: "CommandNotFound", desc: "The command nope has not been found" },
      id: message.id,
    }),
  );
  try {
    const err = await qmpCommand(path, "nope").catch((e: unknown) => e);
    assert.ok(err instanceof QmpCommandError);
    assert.equal(err.errorClass, "CommandNotFound");
    assert.match(err.message, /has not been found/);
  } finally {
    server.close();
  }
});

test("waits for a named event, and a silent server times out", async () => {
  const { path, server } = await fakeQmp("events.sock", (message, socket) => {
    if (message.execute === "system_powerdown") {
      reply(socket, { return: {}, id: message.id });
      setTimeout(() => reply(socket, { event: "POWERDOWN" }), 20);
    }
    // Anything else is never answered.
  });
  try {
    const client = await QmpClient.connect(path);
    const powerdown = client.waitForEvent("POWERDOWN", 2000);
    await client.execute("system_powerdown");
    assert.equal((await powerdown).event, "POWERDOWN");
    await assert.rejects(client.execute("query-status", undefined, 100), /no answer within 100 ms/);
    client.close();
    await assert.rejects(client.execute("query-status"), /closed/);
  } finally {
    server.close();
  }
});

test("connecting to a socket nobody listens on fails, and so does a server that never greets", async () => {
  await assert.rejects(QmpClient.connect(join(dir, "missing.sock"), { timeoutMs: 500 }), /ENOENT/);
  const path = join(dir, "mute.sock");
  const mute = createServer(() => {});
  await new Promise<void>((resolve) => mute.listen(path, resolve));
  try {
    await assert.rejects(QmpClient.connect(path, { timeoutMs: 200 }), /no QMP greeting within 200 ms/);
  } finally {
    mute.close();
  }
});

test("pending commands fail when QEMU goes away", async () => {
  const { path, server } = await fakeQmp("vanish.sock", (_message, socket) => socket.destroy());
  try {
    const client = await QmpClient.connect(path);
    await assert.rejects(client.execute("quit"), /closed/);
  } finally {
    server.close();
  }
});
