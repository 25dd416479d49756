import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  exchange,
  get,
  logOnceItHas,
  putToken,
  startTestService,
  TEST_KEYS,
  type TestService,
  testResponderConfig,
} from "../../test/support/metadata.js";
import { METADATA_BOUNDS } from "./bounds.js";
import type { ResponderConfig } from "./config.js";
import { issueToken } from "./token.js";

// What the server answers: each test exchanges raw bytes with a metadata server on a unix socket, as the
// connector QEMU runs per guest connection does.
const dir = await mkdtemp(join(tmpdir(), "castra-imds-"));
after(() => rm(dir, { recursive: true, force: true }));

const KEYS = TEST_KEYS;
// Binary user-data: NULs, CRLF, a lone CR and bytes that are not UTF-8.
const USER_DATA = Buffer.concat([
  Buffer.from("#!/bin/sh\r\necho hi\r\n"),
  Buffer.from([0, 0, 13, 255, 254, 10, 0]),
  Buffer.from("tail"),
]);

const baseConfig = (overrides: Partial<ResponderConfig> = {}) => testResponderConfig(dir, overrides);

function startResponder(
  config: ResponderConfig,
  options: { userData?: Buffer; readTimeoutMs?: number } = {},
) {
  const userData = "userData" in options ? options.userData : USER_DATA;
  return startTestService(
    dir,
    { config, userData },
    { ...METADATA_BOUNDS, readTimeoutMs: options.readTimeoutMs ?? 2000 },
  );
}

describe("EC2 flavour", () => {
  let r: TestService;
  before(async () => {
    r = await startResponder(baseConfig());
  });
  after(() => r.close());

  const body = async (path: string, headers?: Record<string, string>) => {
    const res = await exchange(r.socketPath, get(path, headers));
    assert.equal(res.status, 200, `GET ${path}`);
    assert.equal(res.headers.get("connection"), "close");
    assert.equal(Number(res.headers.get("content-length")), res.body.length);
    return res.body.toString();
  };

  test("every endpoint tiny-cloud reads answers with the VM's values", async () => {
    assert.equal(
      await body("/latest/meta-data/"),
      "hostname\ninstance-id\nlocal-hostname\nlocal-ipv4\nmac\nnetwork/\npublic-keys/",
    );
    assert.equal(await body("/latest/meta-data/instance-id"), "i-0123456789abcdef0");
    assert.equal(await body("/latest/meta-data/hostname"), "devbox");
    assert.equal(await body("/latest/meta-data/local-hostname"), "devbox");
    assert.equal(await body("/latest/meta-data/local-ipv4"), "169.254.0.15");
    assert.equal(await body("/latest/meta-data/public-keys"), "0=castra");
    assert.equal(await body("/latest/meta-data/public-keys/0/"), "openssh-key");
    assert.equal(await body("/latest/meta-data/public-keys/0/openssh-key"), KEYS.join("\n"));
    assert.equal(await body("/latest/meta-data/network/interfaces/macs/"), "52:54:00:12:34:56/");
    const nic = "/latest/meta-data/network/interfaces/macs/52:54:00:12:34:56";
    assert.equal(await body(`${nic}/`), "device-number\nlocal-ipv4s\nmac");
    assert.equal(await body(`${nic}/device-number`), "0");
    assert.equal(await body(`${nic}/local-ipv4s`), "169.254.0.15");
    assert.equal(await body(`${nic}/mac`), "52:54:00:12:34:56");
  });

  test("user-data is served byte for byte as application/octet-stream", async () => {
    const res = await exchange(r.socketPath, get("/latest/user-data"));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/octet-stream");
    assert.deepEqual(res.body, USER_DATA);
  });

  test("a token from PUT is accepted on a later connection; IMDSv1 without a token still works", async () => {
    const issued = await exchange(r.socketPath, putToken("21600"));
    assert.equal(issued.status, 200);
    assert.equal(issued.headers.get("x-aws-ec2-metadata-token-ttl-seconds"), "21600");
    const token = issued.body.toString();
    assert.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    assert.equal(await body("/latest/meta-data/hostname", { "X-aws-ec2-metadata-token": token }), "devbox");
    assert.equal(await body("/latest/meta-data/hostname"), "devbox");
  });

  test("a wrong, forged or expired token is refused with 401", async () => {
    const wrongSecret = issueToken("another-vm-secret", 60, Date.now());
    const expired = issueToken("test-secret", 1, Date.now() - 5000);
    for (const token of ["nonsense", wrongSecret, expired, `${wrongSecret.split(".")[0]}.AAAA`]) {
      const res = await exchange(
        r.socketPath,
        get("/latest/meta-data/public-keys/0/openssh-key", { "X-aws-ec2-metadata-token": token }),
      );
      assert.equal(res.status, 401, token);
      assert.doesNotMatch(res.body.toString(), /ssh-/);
    }
  });

  test("PUT without a valid TTL is 400; a forwarded PUT gets no token", async () => {
    for (const ttl of [undefined, "0", "21601", "abc", ""]) {
      assert.equal((await exchange(r.socketPath, putToken(ttl))).status, 400, `ttl ${ttl}`);
    }
    const forwarded = `PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n`;
    assert.equal((await exchange(r.socketPath, forwarded)).status, 403);
  });

  test("credentials and other unknown paths are 404; other methods are 405", async () => {
    for (const path of [
      "/latest/meta-data/iam/security-credentials/",
      "/latest/meta-data/iam/",
      "/latest/dynamic/",
      "/x",
    ]) {
      assert.equal((await exchange(r.socketPath, get(path))).status, 404, path);
    }
    assert.equal((await exchange(r.socketPath, "DELETE /latest/meta-data/ HTTP/1.0\r\n\r\n")).status, 405);
    assert.equal((await exchange(r.socketPath, "POST /latest/api/token HTTP/1.0\r\n\r\n")).status, 405);
    assert.equal((await exchange(r.socketPath, get("/latest/api/token"))).status, 405);
  });

  test("HEAD answers the length without a body", async () => {
    const res = await exchange(
      r.socketPath,
      "HEAD /latest/meta-data/hostname HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), "6");
    assert.equal(res.body.length, 0);
  });

  test("an HTTP/1.0 request with bare \\n line endings, as nc sends it, is answered", async () => {
    const res = await exchange(
      r.socketPath,
      "PUT /latest/api/token HTTP/1.0\nX-aws-ec2-metadata-token-ttl-seconds: 5\n\n",
    );
    assert.equal(res.status, 200);
    // tiny-cloud takes the token with `tail -n 1`: it must be the last line, with nothing after it.
    const raw = `${[...res.headers].map(([k, v]) => `${k}: ${v}`).join("\r\n")}\r\n\r\n${res.body}`;
    assert.equal(raw.split("\n").at(-1), res.body.toString());
  });

  test("malformed and oversized requests get an error status and the responder keeps serving", async () => {
    assert.equal((await exchange(r.socketPath, "garbage\r\n\r\n")).status, 400);
    assert.equal((await exchange(r.socketPath, "GET /latest HTTP/2.0\r\n\r\n")).status, 400);
    assert.equal((await exchange(r.socketPath, "GET /latest HTTP/1.0\r\n bad: fold\r\n\r\n")).status, 400);
    assert.equal((await exchange(r.socketPath, get("/latest/meta-data/%zz"))).status, 400);
    assert.equal(
      (await exchange(r.socketPath, `GET / HTTP/1.0\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`)).status,
      431,
    );
    // No blank line at all, ever: the header limit still applies.
    assert.equal((await exchange(r.socketPath, Buffer.alloc(40_000, 0x41))).status, 431);
    assert.equal(
      (await exchange(r.socketPath, "PUT /latest/api/token HTTP/1.0\r\nContent-Length: 99999999\r\n\r\n"))
        .status,
      413,
    );
    assert.equal(
      (await exchange(r.socketPath, "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")).status,
      501,
    );
    assert.equal((await exchange(r.socketPath, "GET /latest/meta-data/", { halfClose: true })).status, 400);
    assert.equal(await body("/latest/meta-data/hostname"), "devbox");
  });

  test("a request body is read before answering", async () => {
    const res = await exchange(
      r.socketPath,
      "PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 9\r\nContent-Length: 4\r\n\r\nabcd",
    );
    assert.equal(res.status, 200);
  });

  test("each request is one log line without the token or the user-data", async () => {
    const logPath = baseConfig().logPath;
    const before = (await readFile(logPath, "utf8").catch(() => "")).length;
    const token = (await exchange(r.socketPath, putToken("60"))).body.toString();
    await body("/latest/user-data", { "X-aws-ec2-metadata-token": token });
    // The guest gets its answer before the line is written.
    const added = (await logOnceItHas(logPath, /GET \/latest\/user-data/)).slice(before);
    assert.match(added, /^\d{4}-\d\d-\d\dT[\d:.]+Z PUT \/latest\/api\/token 200 58B \d+ms\n/);
    assert.match(
      added,
      new RegExp(`\\n[\\d:.TZ-]+ GET /latest/user-data 200 ${USER_DATA.length}B \\d+ms\\n$`),
    );
    const log = await readFile(logPath, "utf8");
    assert.ok(log.includes("PUT /latest/api/token 200"));
    assert.ok(log.includes("/latest/meta-data/iam/security-credentials/ 404"));
    assert.ok(!log.includes(token), "the log holds a token");
    assert.ok(!log.includes("echo hi"), "the log holds user-data");
  });
});

describe("other configurations", () => {
  test("flavour none answers 404 to every path and method", async () => {
    const r = await startResponder(baseConfig({ flavour: "none" }));
    try {
      for (const request of [
        get("/latest/meta-data/"),
        get("/latest/user-data"),
        putToken("60"),
        "DELETE / HTTP/1.0\r\n\r\n",
      ]) {
        assert.equal((await exchange(r.socketPath, request)).status, 404, request);
      }
    } finally {
      await r.close();
    }
  });

  test("without user-data or keys, those paths are 404", async () => {
    const r = await startResponder(baseConfig({ userDataPath: undefined, publicKeys: [] }), {
      userData: undefined,
    });
    try {
      assert.equal((await exchange(r.socketPath, get("/latest/user-data"))).status, 404);
      assert.equal((await exchange(r.socketPath, get("/latest/meta-data/public-keys/"))).status, 404);
      const listing = (await exchange(r.socketPath, get("/latest/meta-data/"))).body.toString();
      assert.doesNotMatch(listing, /public-keys/);
    } finally {
      await r.close();
    }
  });

  test("a client that never finishes its request gets 408 after the read timeout", async () => {
    const r = await startResponder(baseConfig(), { readTimeoutMs: 200 });
    try {
      const started = Date.now();
      assert.equal((await exchange(r.socketPath, "GET /latest/meta-data/ HTTP/1.0\r\n")).status, 408);
      assert.ok(Date.now() - started < 1500);
    } finally {
      await r.close();
    }
  });
});
