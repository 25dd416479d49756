import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, test } from "node:test";
import { pathToFileURL } from "node:url";
import { closedPort, FixtureServer } from "../../test/support/http-server.js";
import { seededBytes } from "../../test/support/image-fixtures.js";
import { CastraError } from "../errors.js";
import { type DownloadEvent, type DownloadRequest, download, transferDeadlineMs } from "./download.js";

const CONTENT = seededBytes(3 * 1024 * 1024 + 123, 7);
const SHA = createHash("sha256").update(CONTENT).digest("hex");
const PATH = "/disk.img";

let server: FixtureServer;
let dir: string;
let dest: string;

before(async () => {
  server = await FixtureServer.start();
  server.serve(PATH, CONTENT);
});
after(() => server.close());
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "castra-download-"));
  dest = join(dir, "disk.img.partial");
  server.requests.length = 0;
});
afterEach(async () => {
  server.fault(PATH, undefined);
  await rm(dir, { recursive: true, force: true });
});

function request(extra: Partial<DownloadRequest> = {}): DownloadRequest & { events: DownloadEvent[] } {
  const events: DownloadEvent[] = [];
  return {
    url: server.url(PATH),
    dest,
    size: CONTENT.length,
    sha256: SHA,
    backoffMs: 10,
    onEvent: (e) => events.push(e),
    events,
    ...extra,
  };
}

async function rejectsWith(
  promise: Promise<unknown>,
  exitCode: number,
  headline: RegExp,
): Promise<CastraError> {
  const err = await promise.then(
    () => assert.fail("expected the download to fail"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CastraError, `expected a CastraError, got ${String(err)}`);
  assert.equal(err.exitCode, exitCode, err.headline);
  assert.match(err.headline, headline);
  return err;
}

test("a fresh download lands verified in dest, with start, progress and done events", async () => {
  const req = request();
  const result = await download(req);
  assert.equal(result.sha256, SHA);
  assert.equal(result.transferred, CONTENT.length);
  assert.deepEqual(await readFile(dest), CONTENT);
  assert.equal(server.gets(PATH).length, 1);
  assert.equal(server.gets(PATH)[0]?.range, undefined);
  assert.deepEqual(req.events[0], {
    type: "download-start",
    url: req.url,
    bytes: CONTENT.length,
    resumeFrom: 0,
    attempt: 1,
  });
  const last = req.events.filter((e) => e.type === "progress").at(-1);
  assert.deepEqual(last && { ...last, idleMs: 0 }, {
    type: "progress",
    received: CONTENT.length,
    total: CONTENT.length,
    idleMs: 0,
  });
  assert.equal(req.events.at(-1)?.type, "download-done");
});

test("an existing .partial is resumed with a Range request and the result is right", async () => {
  await writeFile(dest, CONTENT.subarray(0, 1_000_000));
  const req = request();
  await download(req);
  assert.deepEqual(await readFile(dest), CONTENT);
  assert.deepEqual(
    server.gets(PATH).map((r) => r.range),
    ["bytes=1000000-"],
  );
  assert.equal(
    req.events.find((e) => e.type === "download-start" && e.resumeFrom === 1_000_000)?.type,
    "download-start",
  );
});

test("a complete .partial is verified without any request", async () => {
  await writeFile(dest, CONTENT);
  const result = await download(request());
  assert.equal(result.transferred, 0);
  assert.equal(server.requests.length, 0);
});

test("a connection dropped mid-stream is retried from where it stopped", async () => {
  server.fault(PATH, { dropAfter: { bytes: 1_500_000, times: 1 } });
  const req = request();
  await download(req);
  assert.deepEqual(await readFile(dest), CONTENT);
  const gets = server.gets(PATH);
  assert.equal(gets.length, 2);
  assert.match(gets[1]?.range ?? "", /^bytes=\d+-$/);
  assert.ok(req.events.some((e) => e.type === "download-retry"));
});

test("resets beyond the retry budget fail with 69, keep the .partial, and the next call resumes it", async () => {
  server.fault(PATH, { dropAfter: { bytes: 500_000, times: 4 } });
  await rejectsWith(download(request()), 69, /kept breaking/);
  assert.equal(server.gets(PATH).length, 4);
  const kept = (await stat(dest)).size;
  assert.ok(kept >= 500_000, `kept ${kept} bytes`);
  server.requests.length = 0;
  await download(request());
  assert.deepEqual(await readFile(dest), CONTENT);
  assert.deepEqual(
    server.gets(PATH).map((r) => r.range),
    [`bytes=${kept}-`],
  );
});

test("a server ignoring Range restarts the file cleanly", async () => {
  await writeFile(dest, CONTENT.subarray(0, 2_000_000));
  server.fault(PATH, { ignoreRange: true });
  const req = request();
  await download(req);
  assert.deepEqual(await readFile(dest), CONTENT);
  assert.ok(req.events.some((e) => e.type === "download-restart"));
});

test("a 416 reply leads to verification: bytes the server does not have are a mismatch", async () => {
  const short = CONTENT.subarray(0, 1_000_000);
  server.fault(PATH, { body: short });
  await writeFile(dest, short);
  const err = await rejectsWith(download(request()), 65, /Checksum mismatch/);
  assert.match(err.detail ?? "", /1000000 bytes/);
  assert.equal(server.gets(PATH)[0]?.status, 416);
  assert.equal(existsSync(dest), false);
});

test("wrong bytes of the right size fail with 65 naming url, expected and actual, and leave nothing", async () => {
  const wrong = Buffer.from(CONTENT);
  wrong[12345] = (wrong[12345] ?? 0) ^ 0xff;
  server.fault(PATH, { body: wrong });
  const err = await rejectsWith(download(request()), 65, /Checksum mismatch/);
  assert.ok(err.headline.includes(server.url(PATH)));
  assert.ok(err.detail?.includes(SHA));
  assert.ok(err.detail?.includes(createHash("sha256").update(wrong).digest("hex")));
  assert.equal(existsSync(dest), false);
});

test("a Content-Length that disagrees with the catalog fails with 65 before the body is read", async () => {
  // The body never comes: only an early check can fail fast.
  server.fault(PATH, { body: Buffer.from("<html>oops</html>".repeat(1000)), stallAfter: 0 });
  const started = Date.now();
  const err = await rejectsWith(download(request({ stallTimeoutMs: 5000 })), 65, /Size mismatch/);
  assert.ok(Date.now() - started < 2000);
  assert.match(err.detail ?? "", /17000 bytes/);
  assert.equal(existsSync(dest), false);
});

test("an HTML page instead of the file (a captive portal) fails with 65 at once, without retries", async () => {
  server.fault(PATH, {
    body: Buffer.from("<html>Sign in</html>"),
    page: { contentType: "text/html; charset=utf-8" },
  });
  const err = await rejectsWith(download(request()), 65, /sent a web page instead of the image/);
  assert.match(err.hint ?? "", /browser/);
  assert.equal(server.gets(PATH).length, 1);
  assert.equal(existsSync(dest), false);
});

test("a reply that ends cleanly before the catalog size is a mismatch, not a reason to retry", async () => {
  server.fault(PATH, {
    body: CONTENT.subarray(0, 100_000),
    page: { contentType: "application/octet-stream" },
  });
  const err = await rejectsWith(download(request()), 65, /Checksum mismatch/);
  assert.match(err.detail ?? "", /100000 bytes: the reply ended early/);
  assert.equal(server.gets(PATH).length, 1);
  assert.equal(existsSync(dest), false);
});

test("404 fails at once with 69 naming the URL and status, without retries", async () => {
  const err = await rejectsWith(download(request({ url: server.url("/missing.img") })), 69, /HTTP 404/);
  assert.ok(err.detail?.includes(server.url("/missing.img")));
  assert.equal(server.gets("/missing.img").length, 1);
});

test("a URL's password never reaches events or errors: user:***@ stands in for it", async () => {
  const withPassword = (path: string) => server.url(path).replace("//", "//ann:hunter2@");
  const req = request({ url: withPassword(PATH) });
  await download(req);
  const start = req.events.find((e) => e.type === "download-start");
  assert.equal(start?.type === "download-start" && start.url, server.url(PATH).replace("//", "//ann:***@"));
  await rm(dest);
  const err = await rejectsWith(download(request({ url: withPassword("/missing.img") })), 69, /HTTP 404/);
  const wrong = Buffer.from(CONTENT);
  wrong[7] = (wrong[7] ?? 0) ^ 0xff;
  server.fault(PATH, { body: wrong });
  const mismatch = await rejectsWith(download(request({ url: withPassword(PATH) })), 65, /Checksum mismatch/);
  for (const e of [err, mismatch]) {
    const shown = `${e.headline}\n${e.detail}\n${e.hint}`;
    assert.match(shown, /ann:\*\*\*@/);
    assert.doesNotMatch(shown, /hunter2/);
  }
});

test("5xx replies are retried with backoff", async () => {
  server.fault(PATH, { status: { code: 503, times: 2 } });
  await download(request());
  assert.deepEqual(
    server.gets(PATH).map((r) => r.status),
    [503, 503, 200],
  );
  server.requests.length = 0;
  await rm(dest);
  server.fault(PATH, { status: { code: 500 } });
  await rejectsWith(download(request()), 69, /HTTP 500/);
  assert.equal(server.gets(PATH).length, 4);
});

test("connection refused fails with 69 naming the host", async () => {
  const port = await closedPort();
  const err = await rejectsWith(
    download(request({ url: `http://127.0.0.1:${port}/x.img` })),
    69,
    /Connection refused/,
  );
  assert.ok(err.headline.includes(`127.0.0.1:${port}`));
  assert.match(err.hint ?? "", /CASTRA_MIRROR/);
});

test("a TLS handshake that fails (an untrusted certificate) is 69 naming the host", async (t) => {
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  const made = spawnSync("openssl", [
    ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"],
    ...["-keyout", key, "-out", cert],
  ]);
  if (made.status !== 0) return t.skip("openssl cannot make a test certificate here");
  const tls = createHttpsServer({ key: await readFile(key), cert: await readFile(cert) }, (_req, res) =>
    res.end(),
  );
  await new Promise<void>((resolve) => tls.listen(0, "127.0.0.1", resolve));
  const { port } = tls.address() as AddressInfo;
  try {
    const err = await rejectsWith(
      download(request({ url: `https://127.0.0.1:${port}/disk.img` })),
      69,
      /TLS/,
    );
    assert.ok(err.headline.includes(`127.0.0.1:${port}`));
    assert.match(err.hint ?? "", /CA certificates/);
  } finally {
    tls.closeAllConnections();
    await new Promise((resolve) => tls.close(resolve));
  }
});

test("a stalled server fails with 69 within the stall timeout and keeps what arrived", async () => {
  server.fault(PATH, { stallAfter: 200_000 });
  const started = Date.now();
  await rejectsWith(download(request({ stallTimeoutMs: 400 })), 69, /stalled/);
  assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  assert.equal((await stat(dest)).size, 200_000);
  assert.equal(server.gets(PATH).length, 1);
});

test("a transfer may take the stall timeout plus its bytes at the minimum rate", () => {
  // 127926784 B ÷ 32768 B/s = 3904.016 s (Alpine's image at 32 KiB/s).
  assert.equal(transferDeadlineMs(127_926_784, 30_000, 32 * 1024), 30_000 + 3_904_016);
  assert.equal(transferDeadlineMs(0, 30_000, 32 * 1024), 30_000);
  // 100 GiB at 1 KiB/s: past what a timer can wait, so the longest wait a timer allows.
  assert.equal(transferDeadlineMs(100 * 2 ** 30, 30_000, 1024), 2 ** 31 - 1);
});

test("a server that trickles without ever stalling fails with 69 at the deadline, keeping what arrived", async () => {
  // 3 MiB at 1 MiB/s takes 3 s; the deadline is 0.5 s + 3 MiB at 8 MiB/s = 0.9 s.
  server.fault(PATH, { bytesPerSecond: 1024 * 1024 });
  const started = Date.now();
  const err = await rejectsWith(
    download(request({ stallTimeoutMs: 500, minBytesPerSecond: 8 * 1024 * 1024 })),
    69,
    /is too slow/,
  );
  assert.ok(Date.now() - started < 2500, `took ${Date.now() - started} ms`);
  assert.match(err.detail ?? "", /in 0\.9 s, .* minimum rate of 8 MiB\/s/);
  assert.match(err.hint ?? "", /CASTRA_MIN_RATE/);
  assert.ok((await stat(dest)).size > 0, "what arrived is kept for resume");
  assert.equal(server.gets(PATH).length, 1, "a transfer that ran out of time is not retried");
});

test("an abort stops the download with 130 and keeps the .partial for resume", async () => {
  server.fault(PATH, { stallAfter: 300_000 });
  const controller = new AbortController();
  const req = request({ signal: controller.signal });
  req.onEvent = (e) => {
    if (e.type === "progress") setTimeout(() => controller.abort(), 50);
  };
  const err = await rejectsWith(download(req), 130, /interrupted/);
  assert.match(err.hint ?? "", /resume/);
  assert.equal((await stat(dest)).size, 300_000);
});

test("file: URLs are copied and verified the same way", async () => {
  const source = join(dir, "source.img");
  await writeFile(source, CONTENT);
  await download(request({ url: pathToFileURL(source).href }));
  assert.deepEqual(await readFile(dest), CONTENT);
  await rejectsWith(
    download(request({ url: pathToFileURL(source).href, size: 10, dest: join(dir, "x.partial") })),
    65,
    /Size mismatch/,
  );
});
