import assert from "node:assert/strict";
import { appendFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { byoToml, castraInProcess, tempProject } from "../../../test/support/in-process.js";

let dir: string;
let remove: () => Promise<void>;
beforeEach(async () => {
  ({ dir, remove } = await tempProject(byoToml(["web"], "[broker]\nport = 7074\n")));
  const logs = join(dir, ".castra", "logs");
  await mkdir(logs, { recursive: true });
  await writeFile(
    join(logs, "web.log"),
    "2030-01-01T10:00:01.000Z castra: starting vm web\nqemu: warning: host lacks kvm\n",
  );
  await writeFile(
    join(logs, "broker.log"),
    "2030-01-01T10:00:00.000Z listening on 127.0.0.1:7074\n2030-01-01T10:00:02.000Z vm web said hello\n",
  );
});
afterEach(() => remove());

test("logs merges every source by time, prefixed with its source, and names the logs not written yet", async () => {
  const run = await castraInProcess(["logs"], { cwd: dir });
  assert.equal(run.code, 0, run.stderr);
  // A line's own timestamp becomes its prefix; a line without one takes the nearest one above it.
  assert.deepEqual(run.stdout.trimEnd().split("\n"), [
    "2030-01-01T10:00:00.000Z [host-broker] listening on 127.0.0.1:7074",
    "2030-01-01T10:00:01.000Z [vm:web:qemu] castra: starting vm web",
    "2030-01-01T10:00:01.000Z [vm:web:qemu] qemu: warning: host lacks kvm",
    "2030-01-01T10:00:02.000Z [host-broker] vm web said hello",
  ]);
  assert.match(run.stderr, /^\[vm:web:serial\] no log yet \(\.castra\/logs\/web-serial\.log\)$/m);
});

test("--tail N keeps the last N lines of the merged stream, not N of each source", async () => {
  const run = await castraInProcess(["logs", "--tail", "2"], { cwd: dir });
  assert.equal(run.code, 0);
  assert.deepEqual(run.stdout.trimEnd().split("\n"), [
    "2030-01-01T10:00:01.000Z [vm:web:qemu] qemu: warning: host lacks kvm",
    "2030-01-01T10:00:02.000Z [host-broker] vm web said hello",
  ]);
  assert.equal((await castraInProcess(["logs", "--tail", "0"], { cwd: dir })).stdout, "");
});

test("--follow streams lines appended later and a log that appears, until Ctrl-C, which exits 0", async () => {
  const controller = new AbortController();
  const following = castraInProcess(["logs", "--follow", "--tail", "0"], {
    cwd: dir,
    signal: controller.signal,
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  await appendFile(join(dir, ".castra", "logs", "broker.log"), "2030-01-01T10:00:09.000Z vm web said bye\n");
  await writeFile(join(dir, ".castra", "logs", "web-serial.log"), "web login: ");
  await new Promise((resolve) => setTimeout(resolve, 700));
  controller.abort();
  const run = await following;
  assert.equal(run.code, 0);
  assert.match(run.stdout, /^2030-01-01T10:00:09\.000Z \[host-broker\] vm web said bye$/m);
  assert.match(run.stderr, /^\[vm:web:serial\] log appeared: \.castra\/logs\/web-serial\.log$/m);
});

test("a missing --config file is exit 66 naming it", async () => {
  const run = await castraInProcess(["-c", "nowhere/castra.toml", "logs"], { cwd: dir });
  assert.equal(run.code, 66);
  assert.match(run.stderr, /^error: Config file not found: .*nowhere\/castra\.toml$/m);
});
