import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { BROKER_GREETING, startBrokerServer } from "./server.js";

/** Sends lines and collects the broker's answers until `count` lines arrived. */
function converse(path: string, lines: string[], count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    let text = "";
    socket.setEncoding("utf8");
    socket.on("error", reject);
    socket.on("data", (chunk) => {
      text += chunk;
      const got = text.split("\n").filter(Boolean);
      if (got.length >= count) {
        socket.destroy();
        resolve(got);
      }
    });
    socket.on("connect", () => socket.write(lines.map((l) => `${l}\n`).join("")));
  });
}

test("the broker greets, records `hello <vm>`, rejects the rest, and logs every connection", async () => {
  const log: string[] = [];
  const hellos: string[] = [];
  const dir = await mkdtemp(join(tmpdir(), "castra-broker-"));
  const socketPath = join(dir, "broker.sock");
  const broker = await startBrokerServer({
    socketPath,
    log: (line) => log.push(line),
    onHello: async (vm) => {
      hellos.push(vm);
    },
  });
  try {
    const answers = await converse(socketPath, ["hello devbox", "hello ../etc", "reboot", "ping"], 5);
    assert.deepEqual(answers, [
      BROKER_GREETING,
      "ok: hello devbox",
      "error: usage: hello <vm>",
      'error: unknown command "reboot" (try: hello <vm>)',
      "pong",
    ]);
    assert.deepEqual(hellos, ["devbox"]);
    assert.match(log[0] ?? "", /^connection #\d+ opened$/);
    assert.ok(log.some((l) => /^vm devbox said hello \(connection #\d+\): reachable$/.test(l)));
  } finally {
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  }
});
