import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { findOnPath } from "../../src/host/tools.js";
import { METADATA_BOUNDS } from "../../src/metadata/bounds.js";
import { newResponderSecret, writeResponderConfig } from "../../src/metadata/config.js";
import {
  type MetadataServerFiles,
  type MetadataServerHandle,
  startMetadataServer,
  stopMetadataServer,
} from "../../src/metadata/process.js";
import { connectorArgv } from "../../src/vm/connector.js";
import { CASTRA_BIN } from "../support/cli.js";
import { exchange, type GuestfwdBridge, get, startGuestfwdBridge } from "../support/metadata.js";

// Run `npm run build` first: the metadata server is dist/castra.cjs started as `up` starts it, and each
// connection runs the perl connector the way libslirp runs QEMU's guestfwd command.
const run = promisify(execFile);
const perl = await findOnPath("perl");
const root = await mkdtemp(join(tmpdir(), "castra-imds-e2e-"));
const stateDir = join(root, ".castra");
const PROJECT_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0c2V0dXAtZm9yLXRlc3RzLW9ubHktbm90LWEta2V5 castra@demo";
const USER_DATA = Buffer.concat([
  Buffer.from("#!/bin/sh\r\necho from-user-data\n"),
  Buffer.from([0, 1, 2, 0, 13, 10, 255]),
]);
const files: MetadataServerFiles = {
  config: join(stateDir, "run", "devbox-metadata.json"),
  socket: join(stateDir, "run", "devbox-metadata.sock"),
  pidFile: join(stateDir, "run", "devbox-metadata.pid"),
  log: join(stateDir, "logs", "devbox-metadata.log"),
};
let server: MetadataServerHandle;
let bridge: GuestfwdBridge;
// The server serves while its VM's QEMU runs: a stand-in holds the VM's run record.
let qemu: ChildProcess;

before(async () => {
  await mkdir(join(stateDir, "logs"), { recursive: true });
  await mkdir(join(stateDir, "run"), { recursive: true });
  await writeFile(join(root, "user-data.sh"), USER_DATA);
  qemu = spawn("/bin/sleep", ["600"], { stdio: "ignore" });
  await writeFile(
    join(stateDir, "run", "devbox.pid"),
    JSON.stringify({ pid: qemu.pid, argv: ["/bin/sleep", "600"] }),
  );
  await writeResponderConfig(files.config, {
    flavour: "ec2",
    instanceId: "i-0123456789abcdef0",
    hostname: "devbox",
    localIpv4: "169.254.0.15",
    mac: "52:54:00:12:34:56",
    publicKeys: [PROJECT_KEY],
    userDataPath: "../../user-data.sh",
    secret: newResponderSecret(),
    logPath: "../logs/devbox-metadata.log",
    socketPath: "devbox-metadata.sock",
    vmPidFile: "devbox.pid",
  });
  const command = { execPath: process.execPath, execArgv: [], entry: CASTRA_BIN };
  server = await startMetadataServer({ vmName: "devbox", files, command });
  await server.ready();
  bridge = await startGuestfwdBridge(
    connectorArgv({ perlPath: perl ?? "perl", socketPath: files.socket, ...METADATA_BOUNDS }),
  );
});

after(async () => {
  await bridge?.close();
  await stopMetadataServer(files);
  qemu?.kill("SIGKILL");
  await rm(root, { recursive: true, force: true });
});

test("each answer arrives well within the guest's 1-second timeout (20 connections, printed)", async () => {
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const began = performance.now();
    const res = await exchange(bridge.port, get("/latest/meta-data/hostname"));
    times.push(performance.now() - began);
    assert.match(res.raw.toString(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\ndevbox$/);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median = ((sorted[9] ?? 0) + (sorted[10] ?? 0)) / 2;
  const max = sorted.at(-1) ?? 0;
  console.log(
    `metadata answers through the connector, 20 connections: median ${median.toFixed(0)} ms, max ${max.toFixed(0)} ms`,
  );
  for (const ms of times)
    assert.ok(ms < 700, `an answer took ${ms.toFixed(0)} ms: ${times.map((t) => t.toFixed(0)).join(", ")}`);
});

describe("tiny-cloud's own clients through the connector", () => {
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find(existsSync);
  const port = () => bridge.port;

  test("token via nc -w 1, then keys, hostname and user-data via wget within 1 second each", {
    skip: !busybox && "busybox not installed",
  }, async () => {
    const script = `
      set -e
      bb=${busybox}
      # tiny-cloud's _imds_token and _imds, with the endpoint at our port. Debian's busybox wget has no
      # --timeout, so \`timeout 1\` holds each request to the same 1-second budget.
      token=$(printf 'PUT /latest/api/token HTTP/1.0\\r\\nX-aws-ec2-metadata-token-ttl-seconds: 5\\r\\n\\r\\n' | $bb nc -w 1 127.0.0.1 ${port()} | tail -n 1)
      imds() { $bb timeout 1 $bb wget -q -O - --header "X-aws-ec2-metadata-token: $token" "http://127.0.0.1:${port()}/latest/$1"; }
      echo "keys=$(imds meta-data/public-keys)"
      echo "key=$(imds meta-data/public-keys/0/openssh-key)"
      echo "hostname=$(imds meta-data/hostname)"
      echo "v1=$($bb timeout 1 $bb wget -q -O - http://127.0.0.1:${port()}/latest/meta-data/instance-id)"
      imds user-data > user-data.out
      if imds meta-data/iam/security-credentials/ >/dev/null 2>&1; then echo iam=served; else echo iam=refused; fi
      token=forged.token
      if imds meta-data/hostname >/dev/null 2>&1; then echo forged=served; else echo forged=refused; fi
    `;
    const { stdout } = await run("/bin/sh", ["-c", script], { cwd: root });
    assert.deepEqual(stdout.trim().split("\n"), [
      "keys=0=castra",
      `key=${PROJECT_KEY}`,
      "hostname=devbox",
      "v1=i-0123456789abcdef0",
      "iam=refused",
      "forged=refused",
    ]);
    assert.deepEqual(await readFile(join(root, "user-data.out")), USER_DATA);
    // The server writes each log line just after answering, so the last one may still be on its way.
    let log = "";
    for (let i = 0; i < 50 && !log.includes(" 401 "); i++) {
      await new Promise((r) => setTimeout(r, 100));
      log = await readFile(join(stateDir, "logs", "devbox-metadata.log"), "utf8");
    }
    assert.match(log, / GET \/latest\/meta-data\/iam\/security-credentials\/ 404 /);
    assert.match(log, / GET \/latest\/meta-data\/hostname 401 /);
  });

  test("a client that half-closes after its request still gets the whole answer, and nothing else", async () => {
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(port(), "127.0.0.1");
      let data = "";
      socket.on("data", (d) => (data += d));
      socket.on("end", () => resolve(data));
      socket.on("error", reject);
      socket.end("GET /latest/meta-data/local-ipv4 HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n");
    });
    assert.equal(raw.split("\r\n\r\n")[1], "169.254.0.15");
    assert.match(raw, /\r\nContent-Length: 12\r\n/);
  });
});

test("without its server the connector closes the guest's connection unanswered and exits", async () => {
  assert.equal(await stopMetadataServer(files), true);
  const received = await new Promise<number>((resolve) => {
    const socket = connect(bridge.port, "127.0.0.1");
    let bytes = 0;
    socket.on("data", (d) => (bytes += d.length));
    socket.on("error", () => {});
    socket.on("close", () => resolve(bytes));
    socket.write(get("/latest/meta-data/"));
  });
  assert.equal(received, 0);
});

test("the internal command is hidden from help", async () => {
  const { stdout } = await run(process.execPath, [CASTRA_BIN, "--help"]);
  assert.doesNotMatch(stdout, /__metadata/);
});
