import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { userNetworkAddresses } from "../../src/vm/guest-addresses.js";
import { biosDiskWithAppend } from "../support/bios-disk.js";
import { type CliResult, runCastra } from "../support/cli.js";
import { buildTestGuest, type MetadataResult, parseMetadataReport, qemuSkip } from "../support/guest.js";

// Two bring-your-own VMs on castra's network, booted from the test guest's BIOS disk with its modes on the
// syslinux APPEND line: devbox asks the metadata service like tiny-cloud and then runs dropbear; plain only
// asks. Run `npm run build` first.
const run = promisify(execFile);
const skip = qemuSkip();
const BOOT_MS = 240_000;
const USER_DATA = Buffer.concat([
  Buffer.from("#!/bin/sh\r\necho from-user-data\n"),
  Buffer.from([0, 1, 255, 13, 10]),
]);
let dir: string;
let projectName: string;
let extraKey: string;

const devbox = (extra = "") =>
  `[[vms]]\nname = "devbox"\nbase_image = "devbox.qcow2"\nmemory = "256 MiB"\nready_pattern = "login:"\nmetadata = "ec2"\nuser_data = "user-data.bin"\nssh_user = "alpine"\n${extra}`;
const plain = (metadata: string) =>
  `[[vms]]\nname = "plain"\nbase_image = "plain.qcow2"\nmemory = "256 MiB"\nready_pattern = "login:"\n${metadata}authorized_keys = ["keys/extra.pub"]\nssh = false\n`;
const writeConfig = (plainMetadata: string) =>
  writeFile(
    join(dir, "castra.toml"),
    `[project]\nname = "${projectName}"\n\n${devbox()}\n${plain(plainMetadata)}`,
  );

before(async () => {
  if (skip) return;
  const guest = await buildTestGuest();
  dir = await realpath(await mkdtemp(join(tmpdir(), "castra-guest-access-")));
  projectName = `guest-access-${process.pid}`;
  // The guests' per-request limit: tiny-cloud's 1 s, relaxed for emulated guests on a loaded host; the
  // metadata server's own answer time is asserted separately, from the metadata log.
  await biosDiskWithAppend(
    guest.biosDisk,
    "castra.disk=1 castra.ssh=1 castra.mdtimeout=2",
    join(dir, "devbox.qcow2"),
  );
  await biosDiskWithAppend(guest.biosDisk, "castra.metadata=1 castra.mdtimeout=5", join(dir, "plain.qcow2"));
  await writeFile(join(dir, "user-data.bin"), USER_DATA);
  await mkdir(join(dir, "keys"));
  await run("ssh-keygen", [
    "-q",
    "-t",
    "ed25519",
    "-N",
    "",
    "-C",
    "extra@test",
    "-f",
    join(dir, "keys", "extra"),
  ]);
  extraKey = (await readFile(join(dir, "keys", "extra.pub"), "utf8")).trim();
  await writeConfig('metadata = "ec2"\n');
});

after(async () => {
  if (skip || !dir) return;
  for (const pid of await qemuPids()) process.kill(pid, "SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

function castra(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCastra(args, {
    cwd: dir,
    env: { CASTRA_ACCEL: "tcg", CASTRA_DEBUG: "", ...env },
    timeoutMs: BOOT_MS,
  });
}

async function qemuPids(): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes(`guest=castra:${projectName}:`)) pids.push(Number(entry));
  }
  return pids;
}

const serial = (vm: string) => readFile(join(dir, ".castra", "logs", `${vm}-serial.log`), "utf8");
const metadataLog = (vm: string) => readFile(join(dir, ".castra", "logs", `${vm}-metadata.log`), "utf8");
const projectKey = async () => (await readFile(join(dir, ".castra", "ssh", "id_ed25519.pub"), "utf8")).trim();
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/** The guest's report of one request, found by path and token mode. */
function result(results: MetadataResult[], path: string, token: string): MetadataResult {
  const found = results.find((r) => r.path === path && r.token === token);
  assert.ok(
    found,
    `no ${path} token=${token} in ${JSON.stringify(results.map((r) => `${r.path} ${r.token}`))}`,
  );
  return found;
}

async function up(): Promise<CliResult> {
  const result = await castra(["up"]);
  assert.equal(result.code, 0, result.stderr);
  return result;
}

test("up boots both guests on castra's link-local network and tells how to log in", { skip }, async () => {
  const { stdout, stderr } = await up();
  // Ready means usable: up said so only once devbox's SSH server took the project key.
  assert.match(stderr, /devbox is ready \(login: seen after [\d.]+ s; SSH answers after [\d.]+ s\)/);
  assert.match(stderr, /plain is ready \(login: seen after [\d.]+ s\)/);
  assert.match(stdout, /devbox: `castra ssh devbox` logs in as alpine \(SSH on 127\.0\.0\.1:\d+\)/);
  assert.doesNotMatch(stdout, /plain: `castra ssh/);
  for (const vm of ["devbox", "plain"]) {
    const ip = /castra-test-guest: ip=(\S+)/.exec(await serial(vm))?.[1];
    assert.match(ip ?? "", /^169\.254\.\d+\.\d+$/, `${vm} got ${ip}`);
    assert.equal(
      ip,
      userNetworkAddresses("169.254.0.0/16").guest,
      "the address the metadata service announces",
    );
  }
});

test("devbox gets exactly the project key, its hostname and its user-data byte for byte", {
  skip,
}, async () => {
  const results = parseMetadataReport(await serial("devbox"));
  assert.equal(result(results, "latest/api/token", "put").http, "200");
  assert.equal(result(results, "latest/meta-data/public-keys", "yes").body, "0=castra");
  assert.equal(result(results, "latest/meta-data/public-keys/0/openssh-key", "yes").body, await projectKey());
  assert.equal(result(results, "latest/meta-data/hostname", "yes").body, "devbox");
  const userData = result(results, "latest/user-data", "yes");
  assert.equal(userData.status, "ok");
  assert.equal(userData.bytes, USER_DATA.length);
  assert.equal(userData.sha256, sha256(USER_DATA));
});

test("at boot: a request without the token after a token was issued works (IMDSv1), a wrong one is 401", {
  skip,
}, async () => {
  const results = parseMetadataReport(await serial("devbox"));
  const v1 = result(results, "latest/meta-data/instance-id", "none");
  assert.equal(v1.status, "ok");
  assert.match(v1.body, /^i-[0-9a-f]{17}$/);
  assert.equal(result(results, "latest/meta-data/hostname", "wrong").http, "401");
});

test("plain gets the project key plus its authorized_keys, its hostname, and 404 for user-data", {
  skip,
}, async () => {
  const results = parseMetadataReport(await serial("plain"));
  const keys = result(results, "latest/meta-data/public-keys/0/openssh-key", "yes").body;
  assert.deepEqual(keys.split("\n"), [await projectKey(), extraKey]);
  assert.equal(result(results, "latest/meta-data/hostname", "yes").body, "plain");
  assert.equal(result(results, "latest/user-data", "yes").http, "404");
});

test("the metadata server answers each request well under a second under TCG (timings printed)", {
  skip,
}, async () => {
  for (const vm of ["devbox", "plain"]) {
    // The server's own lines (it listens, it stops) are not requests.
    const lines = (await metadataLog(vm))
      .trim()
      .split("\n")
      .filter((line) => !/ metadata server /.test(line));
    const served = lines.map((line) => Number(/ (\d+)ms$/.exec(line)?.[1]));
    const guest = parseMetadataReport(await serial(vm)).map((r) => r.ms);
    console.log(
      `${vm}: ${lines.length} requests; server ${served.join(", ")} ms; as the TCG guest measured (wget/nc start included) ${guest.join(", ")} ms`,
    );
    assert.equal(lines.length, 8, lines.join("\n"));
    for (const ms of served) assert.ok(ms < 250, `the server took ${ms} ms`);
    // Every request got its answer within the guest's own 1-second bound.
    for (const r of parseMetadataReport(await serial(vm))) assert.notEqual(r.http, "none", JSON.stringify(r));
  }
});

test("status and ports show devbox's SSH forward; plain has none", { skip }, async () => {
  const status = JSON.parse((await castra(["status", "--json"])).stdout);
  const [dev, pl] = status.vms;
  assert.equal(dev.ssh.host, "127.0.0.1");
  assert.equal(dev.ssh.user, "alpine");
  assert.deepEqual(dev.forwards, [
    { host_address: "127.0.0.1", host: dev.ssh.port, guest: 22, protocol: "tcp", automatic: true },
  ]);
  assert.equal(pl.ssh, null);
  const ports = await castra(["ports"]);
  assert.match(
    ports.stdout,
    new RegExp(`^devbox\\s+127\\.0\\.0\\.1:${dev.ssh.port}\\s+22\\s+tcp\\s+automatic \\(castra ssh\\)$`, "m"),
  );
});

test("castra ssh devbox -- echo hello prints hello and records the guest's host key", { skip }, async () => {
  const hello = await castra(["ssh", "devbox", "--", "echo", "hello"]);
  assert.equal(hello.code, 0, hello.stderr);
  assert.equal(hello.stdout, "hello\n");
  const hostKey = /ssh=dropbear .* hostkey=(\S+ \S+)/.exec(await serial("devbox"))?.[1];
  const knownHosts = await readFile(join(dir, ".castra", "ssh", "known_hosts"), "utf8");
  assert.equal(knownHosts.trim(), `castra-${projectName}-devbox ${hostKey}`);
  const exit = await castra(["ssh", "devbox", "--", "exit", "3"]);
  assert.equal(exit.code, 3, "castra ssh exits with the command's exit code");
});

test("from a shell in the guest: no IAM credentials with a fresh token; IMDSv1 works; a wrong token is 401", {
  skip,
}, async () => {
  // The boot sequence's token lives 5 s (as tiny-cloud asks), too short to rely on under a loaded TCG host.
  const script = [
    "md=169.254.169.254",
    "token=$(printf 'PUT /latest/api/token HTTP/1.0\\r\\nX-aws-ec2-metadata-token-ttl-seconds: 60\\r\\n\\r\\n' | timeout 5 nc $md 80 | tail -n 1)",
    'get() { timeout 5 wget -q -O - --header "$1" "http://$md/latest/meta-data/$2" 2>&1; echo; }',
    'echo "iam: $(get "X-aws-ec2-metadata-token: $token" iam/security-credentials/)"',
    'echo "token: $(get "X-aws-ec2-metadata-token: $token" hostname)"',
    'echo "none: $(get "X-castra-test: 1" hostname)"',
    'echo "wrong: $(get "X-aws-ec2-metadata-token: x$token" hostname)"',
  ].join("\n");
  const shell = await castra(["ssh", "devbox", "--", script]);
  assert.equal(shell.code, 0, shell.stderr);
  const lines = shell.stdout.trim().split("\n");
  assert.match(lines[0] ?? "", /^iam: wget: server returned error: HTTP\/1\.[01] 404/);
  assert.equal(lines[1], "token: devbox");
  assert.equal(lines[2], "none: devbox");
  assert.match(lines[3] ?? "", /^wrong: wget: server returned error: HTTP\/1\.[01] 401/);
});

test("castra ssh errors: no VM named, no SSH on plain, no ssh on PATH", { skip }, async () => {
  const which = await castra(["ssh", "--", "echo", "hello"]);
  assert.equal(which.code, 64);
  assert.match(which.stderr, /VMs: devbox, plain/);
  const none = await castra(["ssh", "plain"]);
  assert.equal(none.code, 69);
  assert.match(none.stderr, /vm plain has no SSH forward/);
  const missing = await castra(["ssh", "devbox"], { PATH: "/nonexistent" });
  assert.equal(missing.code, 72);
  assert.match(missing.stderr, /ssh is not installed/);
});

test("castra ssh devbox COMMAND needs no --, and ssh-config's Host block works with plain ssh", {
  skip,
}, async () => {
  const words = await castra(["ssh", "devbox", "echo", "-n", "hi"]);
  assert.equal(words.code, 0, words.stderr);
  assert.equal(words.stdout, "hi");
  const config = await castra(["ssh-config", "devbox"]);
  assert.equal(config.code, 0, config.stderr);
  const file = join(dir, "ssh_config");
  await writeFile(file, config.stdout);
  const { stdout } = await run("ssh", ["-F", file, `castra-${projectName}-devbox`, "echo", "from-config"]);
  assert.equal(stdout, "from-config\n");
});

test("a login user the guest does not know: castra says the guest refused the key (69)", {
  skip,
}, async () => {
  const toml = await readFile(join(dir, "castra.toml"), "utf8");
  await writeFile(join(dir, "castra.toml"), toml.replace('ssh_user = "alpine"', 'ssh_user = "root"'));
  try {
    const refused = await castra(["ssh", "devbox", "true"]);
    assert.equal(refused.code, 69, refused.stderr);
    assert.match(refused.stderr, /Permission denied \(publickey\)/);
    assert.match(refused.stderr, /error: vm devbox refused the project's SSH key for user root/);
  } finally {
    await writeFile(join(dir, "castra.toml"), toml);
  }
});

test("castra logs shows each guest request under [vm:<name>:metadata]", { skip }, async () => {
  const logs = await castra(["logs"]);
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /\[vm:devbox:metadata\] PUT \/latest\/api\/token 200 \d+B \d+ms/);
  assert.match(logs.stdout, /\[vm:plain:metadata\] GET \/latest\/user-data 404 /);
});

test("after down and up on the same overlay the host key is unchanged; a guest without metadata gets 404", {
  skip,
}, async () => {
  assert.equal((await castra(["down"])).code, 0);
  assert.deepEqual(
    await readdir(join(dir, ".castra", "run")),
    [],
    "the metadata server's files and its secret are gone",
  );
  await writeConfig(""); // plain: a bring-your-own image gets no metadata unless it asks
  await up();
  const hello = await castra(["ssh", "devbox", "--", "echo", "hello"]);
  assert.equal(hello.code, 0, hello.stderr);
  assert.equal(hello.stdout, "hello\n");
  const results = parseMetadataReport(await serial("plain"));
  assert.equal(results.length, 8);
  for (const r of results)
    assert.equal(r.http, "404", `castra, not the host, answers ${r.path}: ${JSON.stringify(r)}`);
});

test("castra ssh while the guest still boots waits for its SSH server instead of failing", {
  skip,
}, async () => {
  assert.equal((await castra(["down"])).code, 0);
  assert.equal((await castra(["up", "--no-wait", "devbox"])).code, 0);
  // Still `starting`: the guest has its network, its SSH server may or may not be up yet.
  for (let i = 0; i < 600 && !/castra-test-guest: ip=/.test(await serial("devbox").catch(() => "")); i++)
    await new Promise((resolve) => setTimeout(resolve, 200));
  const early = await castra(["ssh", "devbox", "echo", "hello"]);
  assert.equal(early.code, 0, early.stderr);
  assert.equal(early.stdout, "hello\n");
  assert.match(early.stderr, /devbox is still booting: waiting up to 60 s for its SSH server…/);
  assert.equal((await castra(["down"])).code, 0);
});

test("a recreated overlay brings a new host key: up and ssh refuse with the ssh-keygen -R hint, which fixes it", {
  skip,
}, async () => {
  assert.equal((await castra(["down"])).code, 0);
  await rm(join(dir, ".castra", "devbox-overlay.qcow2"));
  // up's own SSH check meets the new key first: it says so (the VM keeps running), as castra ssh does.
  const upRefused = await castra(["up"]);
  assert.equal(upRefused.code, 65, upRefused.stderr);
  assert.match(upRefused.stderr, /error: The SSH host key of VM devbox changed; ssh refused to connect/);
  const refused = await castra(["ssh", "devbox", "--", "echo", "hello"]);
  assert.equal(refused.code, 65, refused.stderr);
  assert.equal(refused.stdout, "");
  assert.match(refused.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
  assert.match(refused.stderr, /error: The SSH host key of VM devbox changed; ssh refused to connect/);
  const hint = /hint: if the VM was recreated, forget the old key: (ssh-keygen -R \S+ -f \S+)$/m.exec(
    refused.stderr,
  )?.[1];
  assert.ok(hint, refused.stderr);
  const [tool = "", ...args] = hint.split(" ");
  await run(tool, args);
  const again = await castra(["ssh", "devbox", "--", "echo", "hello"]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, "hello\n");
  assert.equal((await castra(["down"])).code, 0);
});
