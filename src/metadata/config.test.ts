import assert from "node:assert/strict";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { DataError, ExitCode } from "../errors.js";
import {
  guestHostname,
  instanceIdFor,
  newResponderSecret,
  type ResponderConfig,
  readResponderConfig,
  writeResponderConfig,
} from "./config.js";
import { issueToken, parseTokenTtl, verifyToken } from "./token.js";

const dir = await mkdtemp(join(tmpdir(), "castra-imds-config-"));
after(() => rm(dir, { recursive: true, force: true }));

const config: ResponderConfig = {
  flavour: "ec2",
  instanceId: instanceIdFor("demo", "devbox"),
  hostname: guestHostname("devbox"),
  localIpv4: "169.254.0.15",
  mac: "52:54:00:12:34:56",
  publicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA castra@demo"],
  userDataPath: "../../user-data.sh",
  secret: newResponderSecret(),
  logPath: "../logs/devbox-metadata.log",
  socketPath: "devbox-metadata.sock",
  vmPidFile: "devbox.pid",
};

test("the config is written owner-only and read back with paths relative to its directory", async () => {
  const path = join(dir, ".castra", "run", "devbox-metadata.json");
  await writeResponderConfig(path, config);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const read = await readResponderConfig(path);
  assert.equal(read.secret, config.secret);
  assert.equal(read.logPath, join(dir, ".castra", "logs", "devbox-metadata.log"));
  assert.equal(read.userDataPath, join(dir, "user-data.sh"));
  assert.equal(read.socketPath, join(dir, ".castra", "run", "devbox-metadata.sock"));
  assert.equal(read.vmPidFile, join(dir, ".castra", "run", "devbox.pid"));
});

test("a broken config is a data error (65) naming the file", async () => {
  const path = join(dir, "broken.json");
  for (const content of [
    "{not json",
    JSON.stringify({ ...config, flavour: "gcp" }),
    JSON.stringify({ ...config, publicKeys: ["a\nb"] }),
    JSON.stringify({ ...config, socketPath: "" }),
  ]) {
    await writeFile(path, content);
    const err = await readResponderConfig(path).catch((e: unknown) => e);
    assert.ok(err instanceof DataError, content);
    assert.equal(err.exitCode, ExitCode.dataErr);
    assert.match(err.detail ?? "", /broken\.json/);
  }
});

test("instance ids are EC2-shaped and stable per project and VM", () => {
  assert.match(instanceIdFor("demo", "devbox"), /^i-[0-9a-f]{17}$/);
  assert.equal(instanceIdFor("demo", "devbox"), instanceIdFor("demo", "devbox"));
  assert.notEqual(instanceIdFor("demo", "devbox"), instanceIdFor("demo", "db"));
  assert.notEqual(instanceIdFor("demo", "devbox"), instanceIdFor("other", "devbox"));
});

test("VM names become valid hostnames", () => {
  assert.equal(guestHostname("alpine"), "alpine");
  assert.equal(guestHostname("web_1"), "web-1");
  assert.equal(guestHostname("-x_"), "x");
  assert.equal(guestHostname("a".repeat(80)).length, 63);
});

test("tokens verify until they expire and only with the secret that issued them", () => {
  const now = Date.now();
  const token = issueToken("one", 10, now);
  assert.equal(verifyToken("one", token, now), "valid");
  assert.equal(verifyToken("one", token, now + 11_000), "expired");
  assert.equal(verifyToken("two", token, now), "invalid");
  // Moving the expiry forward breaks the signature.
  const [, mac] = token.split(".");
  const later = `${Buffer.from(String(Math.floor(now / 1000) + 99_999)).toString("base64url")}.${mac}`;
  assert.equal(verifyToken("one", later, now), "invalid");
  assert.deepEqual(["5", "21600", "0", "21601", "-1", "1.5", undefined].map(parseTokenTtl), [
    5,
    21600,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
  ]);
});
