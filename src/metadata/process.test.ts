import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { exchange, get, logOnceItHas, testResponderConfig, waitFor } from "../../test/support/metadata.js";
import { LaunchError } from "../errors.js";
import { runsArgv } from "../host/process.js";
import { writeResponderConfig } from "./config.js";
import { type MetadataServerFiles, startMetadataServer, stopMetadataServer } from "./process.js";

// The metadata server as `up` starts it: castra's own entry run detached, here from the sources through tsx.
const dir = await mkdtemp(join(tmpdir(), "castra-imds-process-"));
after(() => rm(dir, { recursive: true, force: true }));
const command = {
  execPath: process.execPath,
  execArgv: ["--import", "tsx"],
  entry: fileURLToPath(new URL("../cli/main.ts", import.meta.url)),
};

let count = 0;
/** The files of a fresh VM `vm<n>`, its configuration written as `prepareGuestNetwork` does. */
async function vmFiles(vmPidFile?: string): Promise<MetadataServerFiles> {
  count += 1;
  const run = join(dir, `p${count}`, "run");
  await mkdir(join(dir, `p${count}`, "logs"), { recursive: true });
  const files: MetadataServerFiles = {
    config: join(run, "vm-metadata.json"),
    socket: join(run, "vm-metadata.sock"),
    pidFile: join(run, "vm-metadata.pid"),
    log: join(dir, `p${count}`, "logs", "vm-metadata.log"),
  };
  await writeResponderConfig(
    files.config,
    testResponderConfig(dir, {
      logPath: files.log,
      socketPath: files.socket,
      vmPidFile: vmPidFile ?? join(run, "vm.pid"),
    }),
  );
  return files;
}

/** A stand-in for QEMU and its run record, so the server has a VM to watch. */
async function fakeQemu(pidFile: string) {
  const argv = ["/bin/sleep", "60"];
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: "ignore" });
  await writeFile(pidFile, JSON.stringify({ pid: child.pid, argv }));
  return child;
}

test("up's server listens, holds its secret only in memory, and stops on request, leaving no files", async () => {
  const files = await vmFiles();
  const server = await startMetadataServer({ vmName: "vm", files, command });
  await server.ready();
  assert.deepEqual(JSON.parse(await readFile(files.pidFile, "utf8")), server.record);
  assert.ok(await runsArgv(server.record.pid, server.record.argv));
  assert.ok(!existsSync(files.config), "the configuration, with the token secret, was removed once read");
  const res = await exchange(files.socket, get("/latest/meta-data/hostname"));
  assert.equal(res.body.toString(), "devbox");
  assert.match(
    await logOnceItHas(files.log, /hostname 200/),
    /metadata server listening on .*at most 8 connections/,
  );

  assert.equal(await stopMetadataServer(files), true);
  assert.ok(!(await runsArgv(server.record.pid, server.record.argv)));
  for (const file of [files.pidFile, files.socket]) assert.ok(!existsSync(file), file);
  assert.match(await readFile(files.log, "utf8"), /metadata server stopping: SIGTERM\n$/);
  assert.equal(await stopMetadataServer(files), false, "nothing left to stop");
});

test("the server ends itself once its QEMU is gone, and removes its socket", async () => {
  const vmPidFile = join(dir, "qemu.pid");
  const files = await vmFiles(vmPidFile);
  const qemu = await fakeQemu(vmPidFile);
  const server = await startMetadataServer({ vmName: "vm", files, command });
  try {
    await server.ready();
    await new Promise((resolve) => setTimeout(resolve, 1500)); // it notices its QEMU within a second
    qemu.kill("SIGKILL");
    await waitFor(
      async () => ((await runsArgv(server.record.pid, server.record.argv)) ? undefined : true),
      10_000,
    );
    assert.ok(!existsSync(files.socket));
    assert.match(await readFile(files.log, "utf8"), /metadata server stopping: QEMU \(pid \d+\) is gone\n$/);
  } finally {
    qemu.kill("SIGKILL");
    await stopMetadataServer(files);
  }
});

test("a server left running is stopped before a new one starts on the same socket", async () => {
  const files = await vmFiles();
  const first = await startMetadataServer({ vmName: "vm", files, command });
  await first.ready();
  await writeResponderConfig(
    files.config,
    testResponderConfig(dir, {
      logPath: files.log,
      socketPath: files.socket,
      vmPidFile: join(dir, "none.pid"),
    }),
  );
  const second = await startMetadataServer({ vmName: "vm", files, command });
  try {
    await second.ready();
    assert.ok(!(await runsArgv(first.record.pid, first.record.argv)));
    assert.equal((await exchange(files.socket, get("/latest/meta-data/hostname"))).status, 200);
  } finally {
    await stopMetadataServer(files);
  }
});

test("a server that cannot start is a launch error (70) with the last lines of its log", async () => {
  const files = await vmFiles();
  await writeFile(files.config, "{not json");
  const server = await startMetadataServer({ vmName: "vm", files, command });
  const err = await server.ready().catch((e: unknown) => e);
  assert.ok(err instanceof LaunchError, String(err));
  assert.match(
    err.headline,
    /^The metadata server of vm vm did not start: it exited \(status 65\) while starting$/,
  );
  assert.match(err.detail ?? "", /Invalid metadata responder configuration: .*vm-metadata\.json: not JSON/);
  assert.match(err.hint ?? "", /castra logs/);
  await stopMetadataServer(files);
  assert.ok(!existsSync(files.config));
});
