import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { newResponderSecret, writeResponderConfig } from "../../src/metadata/config.js";
import { metadataGuestfwd } from "../../src/metadata/guestfwd.js";
import { CASTRA_BIN } from "../support/cli.js";

// Run `npm run build` first: these tests spawn dist/castra.js the way QEMU does, once per guest connection.
const run = promisify(execFile);
const root = await mkdtemp(join(tmpdir(), "castra-imds-e2e-"));
const stateDir = join(root, ".castra");
const CONFIG_REL = "run/devbox-metadata.json";
const PROJECT_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0c2V0dXAtZm9yLXRlc3RzLW9ubHktbm90LWEta2V5 castra@demo";
const USER_DATA = Buffer.concat([
  Buffer.from("#!/bin/sh\r\necho from-user-data\n"),
  Buffer.from([0, 1, 2, 0, 13, 10, 255]),
]);
after(() => rm(root, { recursive: true, force: true }));

before(async () => {
  await mkdir(join(stateDir, "logs"), { recursive: true });
  await writeFile(join(root, "user-data.sh"), USER_DATA);
  await writeResponderConfig(join(stateDir, CONFIG_REL), {
    flavour: "ec2",
    instanceId: "i-0123456789abcdef0",
    hostname: "devbox",
    localIpv4: "169.254.0.15",
    mac: "52:54:00:12:34:56",
    publicKeys: [PROJECT_KEY],
    userDataPath: "../../user-data.sh",
    secret: newResponderSecret(),
    logPath: "../logs/devbox-metadata.log",
  });
});

/** The command line QEMU would run: the guestfwd value after `cmd:`, with QEMU's `,,` read back. */
const guestfwdCommand = () =>
  metadataGuestfwd({ nodePath: process.execPath, cliPath: CASTRA_BIN, configRelPath: CONFIG_REL })
    .replace(/^tcp:169\.254\.169\.254:80-cmd:/, "")
    .replaceAll(",,", ",");

/** One request through `/bin/sh -c <command>` with a pipe for stdin and stdout; resolves with the time to the full answer. */
function timedRequest(command: string, request: string): Promise<{ ms: number; response: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn("/bin/sh", ["-c", command], { cwd: stateDir, stdio: ["pipe", "pipe", "pipe"] });
    let response = "";
    child.stdout.on("data", (d) => (response += d));
    child.stdout.on("end", () => resolve({ ms: performance.now() - started, response }));
    child.on("error", reject);
    child.stdin.write(request);
  });
}

test("each process answers well within the guest's 1-second timeout (20 spawns, printed)", async () => {
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const { ms, response } = await timedRequest(
      guestfwdCommand(),
      "GET /latest/meta-data/hostname HTTP/1.0\r\n\r\n",
    );
    assert.match(response, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\ndevbox$/);
    times.push(ms);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median = ((sorted[9] ?? 0) + (sorted[10] ?? 0)) / 2;
  const max = sorted.at(-1) ?? 0;
  console.log(
    `metadata responder latency over 20 spawns: median ${median.toFixed(0)} ms, max ${max.toFixed(0)} ms`,
  );
  for (const ms of times)
    assert.ok(ms < 700, `an answer took ${ms.toFixed(0)} ms: ${times.map((t) => t.toFixed(0)).join(", ")}`);
});

describe("tiny-cloud's own clients against a responder spawned per connection like libslirp", () => {
  let server: Server;
  let port = 0;
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find(existsSync);

  before(async () => {
    // libslirp hands the connection to the command as stdin, stdout *and* stderr, and runs it without a shell.
    server = createServer({ pauseOnConnect: true }, (socket) => {
      const child = spawn("/bin/sh", ["-c", guestfwdCommand()], {
        cwd: stateDir,
        stdio: [socket, socket, socket],
      });
      child.on("spawn", () => socket.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    assert.ok(address && typeof address === "object");
    port = address.port;
  });
  after(() => server.close());

  test("token via nc -w 1, then keys, hostname and user-data via wget within 1 second each", {
    skip: !busybox && "busybox not installed",
  }, async () => {
    const script = `
      set -e
      bb=${busybox}
      # tiny-cloud's _imds_token and _imds, with the endpoint at our port. Debian's busybox wget has no
      # --timeout, so \`timeout 1\` holds each request to the same 1-second budget.
      token=$(printf 'PUT /latest/api/token HTTP/1.0\\r\\nX-aws-ec2-metadata-token-ttl-seconds: 5\\r\\n\\r\\n' | $bb nc -w 1 127.0.0.1 ${port} | tail -n 1)
      imds() { $bb timeout 1 $bb wget -q -O - --header "X-aws-ec2-metadata-token: $token" "http://127.0.0.1:${port}/latest/$1"; }
      echo "keys=$(imds meta-data/public-keys)"
      echo "key=$(imds meta-data/public-keys/0/openssh-key)"
      echo "hostname=$(imds meta-data/hostname)"
      echo "v1=$($bb timeout 1 $bb wget -q -O - http://127.0.0.1:${port}/latest/meta-data/instance-id)"
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
    // Each process writes its log line just after answering, so the last one may still be on its way.
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
      const socket = connect(port, "127.0.0.1");
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

test("a responder whose configuration is missing answers 500 and prints nothing the guest would read", async () => {
  const command = metadataGuestfwd({
    nodePath: process.execPath,
    cliPath: CASTRA_BIN,
    configRelPath: "run/missing.json",
  })
    .replace(/^tcp:169\.254\.169\.254:80-cmd:/, "")
    .replaceAll(",,", ",");
  const child = spawn("/bin/sh", ["-c", `${command} 2>&1`], {
    cwd: stateDir,
    stdio: ["pipe", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stdin.end("GET /latest/meta-data/ HTTP/1.0\r\n\r\n");
  const code = await new Promise((resolve) => child.on("close", resolve));
  assert.equal(code, 70);
  assert.match(out, /^HTTP\/1\.1 500 Internal Server Error\r\n/);
  assert.equal(out.split("\r\n\r\n")[1], "castra metadata service: configuration unreadable\n");
});

test("the internal command is hidden from help", async () => {
  const { stdout } = await run(process.execPath, [CASTRA_BIN, "--help"]);
  assert.doesNotMatch(stdout, /__metadata/);
});
