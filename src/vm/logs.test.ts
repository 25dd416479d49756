import assert from "node:assert/strict";
import { appendFile, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { projectAt } from "../../test/support/project.js";
import type { Project } from "../config/model.js";
import { logSources, mergeByTime, SourceFollower, tailSource } from "./logs.js";

const dir = await mkdtemp(join(tmpdir(), "castra-logs-"));
after(() => rm(dir, { recursive: true, force: true }));

const project: Project = projectAt(dir, {
  vms: [
    { name: "devbox", source: { kind: "path", path: "/b.qcow2" }, overlay: "/o.qcow2", portForwards: [] },
  ],
  broker: { port: 7070 },
});

test("sources: the broker when configured, then each VM's QEMU, serial, metadata and provisioning logs (no image manager for BYO)", () => {
  assert.deepEqual(
    logSources(project).map((s) => s.label),
    ["host-broker", "vm:devbox:qemu", "vm:devbox:serial", "vm:devbox:metadata", "vm:devbox:provision"],
  );
  assert.equal(logSources(project).at(-1)?.path, join(dir, ".castra", "logs", "devbox-provision.log"));
});

test("tails are merged by time: own timestamps, inherited timestamps, else the file's mtime", async () => {
  const broker = join(dir, "broker.log");
  const qemu = join(dir, "qemu.log");
  const serial = join(dir, "serial.log");
  await writeFile(
    broker,
    "2025-01-01T10:00:05.000Z listening\n2025-01-01T10:00:20.000Z vm devbox said hello\n",
  );
  await writeFile(qemu, "2025-01-01T10:00:00.000Z castra: starting vm devbox\nqemu: warning: something\n");
  await writeFile(serial, "Booting\nlogin: ");
  await utimes(serial, new Date("2025-01-01T10:00:12Z"), new Date("2025-01-01T10:00:12Z"));
  const tails = await Promise.all([
    tailSource({ label: "host-broker", path: broker }, 10),
    tailSource({ label: "vm:devbox:qemu", path: qemu }, 10),
    tailSource({ label: "vm:devbox:serial", path: serial }, 10),
  ]);
  const merged = mergeByTime(tails.map((t) => t?.lines ?? []));
  assert.deepEqual(
    merged.map((l) => `${l.time.toISOString().slice(11, 19)} [${l.label}] ${l.text}`),
    [
      "10:00:00 [vm:devbox:qemu] castra: starting vm devbox",
      "10:00:00 [vm:devbox:qemu] qemu: warning: something",
      "10:00:05 [host-broker] listening",
      "10:00:12 [vm:devbox:serial] Booting",
      "10:00:12 [vm:devbox:serial] login: ",
      "10:00:20 [host-broker] vm devbox said hello",
    ],
  );
  assert.equal(await tailSource({ label: "x", path: join(dir, "nope.log") }, 10), undefined);
});

test("following: new lines, a file that appears later, a restart after truncation, a prompt without newline", async () => {
  const path = join(dir, "follow.log");
  const follower = new SourceFollower({ label: "vm:devbox:serial", path }, undefined);
  const texts = async (now: Date) =>
    (await follower.poll(now)).map((u) => (u.kind === "line" ? u.line.text : `<${u.kind}>`));
  const t0 = new Date("2025-01-01T00:00:00Z");
  assert.deepEqual(await texts(t0), []);
  await writeFile(path, "one\ntw");
  assert.deepEqual(await texts(t0), ["<appeared>", "one"]);
  await appendFile(path, "o\nlogin: ");
  assert.deepEqual(await texts(new Date(t0.getTime() + 100)), ["two"]);
  // The prompt has no newline: it is shown once it has waited a second.
  assert.deepEqual(await texts(new Date(t0.getTime() + 1200)), ["login: "]);
  await writeFile(path, "new boot\n");
  assert.deepEqual(await texts(new Date(t0.getTime() + 1300)), ["<restarted>", "new boot"]);
});
