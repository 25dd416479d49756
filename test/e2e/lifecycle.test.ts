import assert from "node:assert/strict";
import { copyFile, mkdtemp, readdir, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { projectPaths } from "../../src/vm/paths.js";
import { type CliResult, runCastra } from "../support/cli.js";
import { buildTestGuest, qemuSkip } from "../support/guest.js";
import { freePort, pidsRunning } from "../support/processes.js";

// One project booted a few times: the checks share each boot to keep the run short.
const skip = qemuSkip();
const BOOT_MS = 180_000;
let dir: string;
let projectName: string;
let forwardPort: number;
let brokerPort: number;

before(async () => {
  if (skip) return;
  const guest = await buildTestGuest();
  // A comma in the project path: every QEMU option value carrying a path must be escaped.
  dir = await realpath(await mkdtemp(join(tmpdir(), "castra-lifecycle,")));
  projectName = `lifecycle-${process.pid}`;
  [forwardPort, brokerPort] = [await freePort(), await freePort()];
  await copyFile(guest.biosDisk, join(dir, "base.qcow2"));
  await writeFile(
    join(dir, "castra.toml"),
    [
      'version = "0.1.0"',
      `[project]\nname = "${projectName}"`,
      '[[vms]]\nname = "devbox"\nbase_image = "base.qcow2"\ncpus = 1\nmemory = "256 MiB"\nready_pattern = "login:"',
      `[[vms.port_forwards]]\nhost = ${forwardPort}\nguest = 22`,
      `[broker]\nport = ${brokerPort}`,
    ].join("\n\n"),
  );
});

after(async () => {
  if (skip || !dir) return;
  // Whatever happened above: no QEMU or broker of this project outlives the test.
  for (const pid of await pidsRunning(`guest=castra:${projectName}:`)) process.kill(pid, "SIGKILL");
  for (const pid of await brokerPids()) process.kill(pid, "SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

function castra(args: string[], timeoutMs = BOOT_MS): Promise<CliResult> {
  return runCastra(args, { cwd: dir, env: { CASTRA_ACCEL: "tcg", CASTRA_DEBUG: "" }, timeoutMs });
}

const qemuPids = () => pidsRunning(`guest=castra:${projectName}:devbox`);
const brokerPids = () => pidsRunning(`broker\0--project-dir\0${dir}\0`);

/** Local addresses (hex, as in /proc/net/tcp) of the sockets listening on `port`. */
async function listeningAddresses(port: number): Promise<string[]> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const addresses: string[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const row of (await readFile(table, "utf8")).split("\n").slice(1)) {
      const [, local = "", , state] = row.trim().split(/\s+/);
      if (local.endsWith(`:${hexPort}`) && state === "0A") addresses.push(local.split(":")[0] ?? "");
    }
  }
  return addresses;
}

async function status(): Promise<{
  code: number | null;
  vm: Record<string, unknown>;
  broker: Record<string, unknown>;
}> {
  const result = await castra(["status", "--json"]);
  const doc = JSON.parse(result.stdout);
  return { code: result.code, vm: doc.vms[0], broker: doc.broker };
}

/** A hello on the broker's unix socket, where QEMU's relay takes a guest's connection to 169.254.2.4. */
function sayHello(vm: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: projectPaths({ stateDir: join(dir, ".castra") }).brokerSocket });
    let text = "";
    socket.setEncoding("utf8");
    socket.on("error", reject);
    socket.on("connect", () => socket.write(`hello ${vm}\n`));
    socket.on("data", (chunk) => {
      text += chunk;
      if (text.includes("ok: ")) socket.end();
    });
    socket.on("close", () => resolve(text));
  });
}

async function until(
  condition: () => boolean | Promise<boolean>,
  message: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(message);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const serialLog = () => readFile(join(dir, ".castra/logs/devbox-serial.log"), "utf8");

test("two concurrent `up`s start exactly one QEMU and both report the VM ready", { skip }, async () => {
  const [first, second] = await Promise.all([castra(["up"]), castra(["up"])]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(second.code, 0, second.stderr);
  assert.equal((await qemuPids()).length, 1);
  const both = first.stderr + second.stderr;
  assert.match(both, /devbox is ready \(login: seen after \d+\.\d s\)/);
  assert.match(both, /Starting devbox/);
  // The loser of the race waited for the lock, then found the VM already starting.
  assert.match(both, /already (starting|running)/);
  assert.match(first.stdout + second.stdout, /castra down/);
});

test("status --json: running under TCG, with resources, forwards and the broker waiting", {
  skip,
}, async () => {
  const { code, vm, broker } = await status();
  assert.equal(code, 0);
  assert.equal(vm.state, "running");
  assert.deepEqual(await qemuPids(), [vm.pid]);
  assert.equal(vm.accelerator, "tcg");
  assert.equal(vm.cpus, 1);
  assert.equal(vm.memory_bytes, 256 * 1024 * 1024);
  assert.ok(typeof vm.uptime_seconds === "number" && vm.uptime_seconds >= 0);
  assert.deepEqual(vm.forwards, [
    { host_address: "127.0.0.1", host: forwardPort, guest: 22, protocol: "tcp" },
  ]);
  assert.equal(vm.broker, "waiting");
  assert.equal(broker.state, "running");
  const table = await castra(["status"]);
  assert.match(table.stdout, /^VM\s+STATE\s+CPU\/MEM\s+UPTIME\s+BROKER\s+FORWARDS$/m);
  assert.match(
    table.stdout,
    new RegExp(
      `^devbox\\s+running\\s+1/256 MiB\\s+\\S+\\s+waiting\\s+127\\.0\\.0\\.1:${forwardPort}→22/tcp`,
      "m",
    ),
  );
});

test("the forward listens on 127.0.0.1 only, and accepts connections there", { skip }, async () => {
  // 0100007F is 127.0.0.1 in the kernel's socket table; nothing on 0.0.0.0 or IPv6.
  assert.deepEqual(await listeningAddresses(forwardPort), ["0100007F"]);
  await new Promise<void>((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: forwardPort }, () => {
      socket.destroy();
      resolve();
    });
    socket.on("error", reject);
  });
});

test("logs shows the serial console, QEMU and broker lines with prefixes; --tail and --follow work", {
  skip,
}, async () => {
  const all = await castra(["logs"]);
  assert.equal(all.code, 0);
  assert.match(all.stdout, /^\S+Z \[vm:devbox:serial\] castra-test-guest: ready/m);
  assert.match(all.stdout, /^\S+Z \[vm:devbox:serial\] .*login:/m);
  assert.match(all.stdout, /^\S+Z \[vm:devbox:qemu\] castra: starting vm devbox/m);
  assert.match(all.stdout, /^\S+Z \[host-broker\] listening on .*broker\.sock/m);
  // --tail counts lines of the merged stream, not of each source.
  const tail = await castra(["logs", "--tail", "2"]);
  assert.equal(tail.stdout.trim().split("\n").length, 2, tail.stdout);
  // --follow: once it has printed the tails, a new broker line must stream in; Ctrl-C then exits 0.
  let streamed = "";
  let child: import("node:child_process").ChildProcess | undefined;
  const following = runCastra(["logs", "--follow", "--tail", "3"], {
    cwd: dir,
    onSpawn: (c) => {
      child = c;
      c.stdout?.on("data", (chunk) => (streamed += chunk));
    },
  });
  await until(() => streamed.split("\n").length > 3, "logs --follow never printed its tails");
  await sayHello("devbox");
  await until(() => /\[host-broker\] vm devbox said hello/.test(streamed), "the hello never streamed in");
  child?.kill("SIGINT");
  const followed = await following;
  assert.equal(followed.code, 0, followed.stderr);
});

test("a hello to the broker makes the VM reachable; the broker takes no host port", { skip }, async () => {
  assert.deepEqual(await listeningAddresses(brokerPort), []);
  assert.match(await sayHello("devbox"), /^castra host broker: .*\nok: hello devbox\n$/);
  const { vm } = await status();
  assert.equal(vm.broker, "reachable", JSON.stringify(vm));
});

test("`up` while running says so and starts nothing", { skip }, async () => {
  const before = await qemuPids();
  const again = await castra(["up"]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /devbox is already running \(pid \d+\)/, again.stderr);
  assert.doesNotMatch(again.stderr, /Starting devbox/);
  assert.deepEqual(await qemuPids(), before);
});

test("down powers the guest off through ACPI, stops the broker and frees the port", { skip }, async () => {
  assert.equal((await brokerPids()).length, 1);
  const down = await castra(["down"]);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stderr, /devbox powered off \(ACPI\)/);
  assert.doesNotMatch(down.stderr, /SIGTERM|SIGKILL/);
  assert.match(down.stderr, /Host broker stopped/);
  assert.match(await serialLog(), /castra-test-guest: power button pressed, powering off/);
  assert.deepEqual(await qemuPids(), []);
  assert.deepEqual(await brokerPids(), []);
  assert.deepEqual(await listeningAddresses(forwardPort), []);
  const { code, vm, broker } = await status();
  assert.equal(code, 0);
  assert.equal(vm.state, "stopped");
  assert.equal(broker.state, "stopped");
  assert.deepEqual(await readdir(join(dir, ".castra/run")), []);
  const nothing = await castra(["down"]);
  assert.equal(nothing.code, 0);
  assert.match(nothing.stdout, /Nothing is running/);
});

test("--timeout bounds the wait (exit 70, serial lines); the next `up` waits for that boot", {
  skip,
}, async () => {
  const hurried = await castra(["up", "--timeout", "1"]);
  assert.equal(hurried.code, 70, hurried.stderr);
  assert.match(hurried.stderr, /devbox was not ready within 1 s: "login:" did not appear/);
  assert.match(hurried.stderr, /hint: it is still running/);
  assert.equal((await status()).vm.state, "starting");
  const patient = await castra(["up"]);
  assert.equal(patient.code, 0, patient.stderr);
  assert.match(patient.stderr, /devbox is already starting/);
  assert.match(patient.stderr, /devbox is ready/);
  assert.equal((await qemuPids()).length, 1);
  // The overlay kept the guest's data: its boot counter went on.
  assert.match(await serialLog(), /castra-test-guest: boots=2/);
});

test("QEMU killed with SIGKILL: status error (exit 1) with log lines; the next `up` recovers", {
  skip,
}, async () => {
  const [pid] = await qemuPids();
  assert.ok(pid);
  process.kill(pid, "SIGKILL");
  await until(async () => (await qemuPids()).length === 0, "QEMU survived SIGKILL");
  const failed = await castra(["status"]);
  assert.equal(failed.code, 1);
  assert.match(failed.stdout, /^devbox\s+error/m);
  assert.match(failed.stderr, /devbox: QEMU \(pid \d+\) exited without `castra down`/);
  // Only this run's last lines (SIGKILL leaves QEMU none), never earlier runs' command lines; the log is named.
  assert.match(
    failed.stderr,
    /(its last lines \(all of it|QEMU wrote nothing before it ended; its log): .*devbox\.log/,
  );
  assert.doesNotMatch(failed.stderr, /castra: starting vm/);
  assert.match(failed.stderr, /hint: run `castra up` to start it again/);
  const json = await status();
  assert.equal(json.vm.state, "error");
  assert.ok(Array.isArray(json.vm.last_log_lines));

  const recovered = await castra(["up"]);
  assert.equal(recovered.code, 0, recovered.stderr);
  assert.match(recovered.stderr, /stopped unexpectedly .* starting it again on the same overlay/);
  assert.equal((await status()).vm.state, "running");
  assert.match(await serialLog(), /castra-test-guest: boots=3/);
  assert.equal((await castra(["down"])).code, 0);
});

test("Ctrl-C during `up` stops the QEMU it started and exits 130", { skip }, async () => {
  let child: import("node:child_process").ChildProcess | undefined;
  const up = runCastra(["up"], {
    cwd: dir,
    env: { CASTRA_ACCEL: "tcg" },
    onSpawn: (c) => {
      child = c;
    },
  });
  await until(async () => (await qemuPids()).length === 1, "QEMU never started");
  child?.kill("SIGINT");
  const result = await up;
  assert.equal(result.code, 130, result.stderr);
  assert.match(result.stderr, /Interrupted/);
  assert.deepEqual(await qemuPids(), []);
  assert.deepEqual(await brokerPids(), []);
  assert.equal((await status()).vm.state, "stopped");
});
