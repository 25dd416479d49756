import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { seededBytes } from "../../test/support/image-fixtures.js";
import { type HttpConnection, openHttp } from "./http-get.js";
import { ProtocolError } from "./http-reply.js";
import { isRetriable, ProxyError, StallError } from "./network-errors.js";
import { parseProxy } from "./proxy-env.js";

// A raw TCP server that answers each request path with hand-written bytes, so every framing and failure
// a real server can produce (chunked, HTTP/1.0, cut connections, stalls) is reproduced exactly.
type Answer = (socket: Socket, request: string) => unknown;
const answers = new Map<string, Answer>();
const requests: string[] = [];
let server: Server;
let origin: string;
const BODY = seededBytes(3 * 1024 * 1024 + 7, 5);

before(async () => {
  server = createServer((socket) => {
    let text = "";
    socket.on("error", () => {});
    socket.on("data", (data) => {
      text += data.toString("latin1");
      if (!text.includes("\r\n\r\n")) return;
      requests.push(text);
      const path = text.split(" ")[1] ?? "";
      void (answers.get(path) ?? ((s) => s.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")))(
        socket,
        text,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(() => server.close());

async function readAll(
  conn: HttpConnection,
  sink?: (n: number) => Promise<void> | undefined,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  try {
    await conn.readBody((chunk) => {
      parts.push(Buffer.from(chunk)); // the chunk's buffer is reused after the call
      return sink?.(parts.length);
    });
  } finally {
    conn.close();
  }
  return Buffer.concat(parts);
}

const get = (path: string, stallTimeoutMs = 5000) => openHttp(`${origin}${path}`, {}, { stallTimeoutMs });

test("a Content-Length body arrives whole, also when the sink makes the socket wait", async () => {
  answers.set("/length", (s) => {
    s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n`);
    s.end(BODY);
  });
  assert.ok((await readAll(await get("/length"))).equals(BODY));
  const slow = await readAll(await get("/length"), (n) => (n % 5 === 0 ? sleep(5) : undefined));
  assert.ok(slow.equals(BODY), "pausing for the sink loses and reorders nothing");
});

test("a chunked body written in odd pieces is decoded exactly", async () => {
  answers.set("/chunked", async (s) => {
    s.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (let at = 0; at < BODY.length; at += 700_001) {
      const piece = BODY.subarray(at, at + 700_001);
      s.write(`${piece.length.toString(16)}\r\n`);
      s.write(piece.subarray(0, 3));
      await sleep(1);
      s.write(Buffer.concat([piece.subarray(3), Buffer.from("\r\n")]));
    }
    s.end("0\r\n\r\n");
  });
  assert.ok((await readAll(await get("/chunked"))).equals(BODY));
});

test("an HTTP/1.0 body without a length ends with the connection", async () => {
  answers.set("/http10", (s) => s.end(Buffer.concat([Buffer.from("HTTP/1.0 200 OK\r\n\r\n"), BODY])));
  const conn = await get("/http10");
  assert.equal(conn.res.statusCode, 200);
  assert.ok((await readAll(conn)).equals(BODY));
});

test("a connection cut before the announced length is a reset worth a retry", async () => {
  answers.set("/cut", (s) => {
    s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n`);
    s.end(BODY.subarray(0, 1000));
  });
  const err = await readAll(await get("/cut")).catch((e: unknown) => e);
  assert.equal((err as NodeJS.ErrnoException).code, "ECONNRESET");
  assert.equal(isRetriable(err), true);
});

test("redirects are followed; user:password@ in the URL becomes Basic auth", async () => {
  answers.set("/moved", (s) => s.end("HTTP/1.1 302 Found\r\nLocation: /length\r\nContent-Length: 0\r\n\r\n"));
  const conn = await openHttp(
    `${origin.replace("//", "//ann:s%20cret@")}/moved`,
    { range: "bytes=0-" },
    {
      stallTimeoutMs: 5000,
    },
  );
  assert.ok((await readAll(conn)).equals(BODY));
  const first = requests.find((r) => r.startsWith("GET /moved "));
  assert.match(first ?? "", /\r\nAuthorization: Basic YW5uOnMgY3JldA==\r\n/);
  assert.match(first ?? "", /\r\nrange: bytes=0-\r\n/);
});

test("a trailer section that never ends is cut: the body is complete once its last chunk arrived", async () => {
  answers.set("/drip", (s) => {
    s.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${BODY.length.toString(16)}\r\n`);
    s.write(Buffer.concat([BODY, Buffer.from("\r\n0\r\n")]));
    const drip = setInterval(() => s.write("X-Drip: 1\r\n"), 50);
    s.on("close", () => clearInterval(drip));
  });
  const started = performance.now();
  assert.ok((await readAll(await get("/drip", 400))).equals(BODY));
  assert.ok(performance.now() - started < 2000, "cut after the stall timeout (400 ms), drip or not");
});

test("a server that goes silent is a stall; one that speaks something else is refused", async () => {
  answers.set("/stall", (s) => s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\nabc`));
  const conn = await get("/stall", 300);
  const err = await readAll(conn).catch((e: unknown) => conn.explain(e));
  assert.ok(err instanceof StallError, `got ${err}`);
  answers.set("/ssh", (s) => s.end("SSH-2.0-OpenSSH_9.2\r\n\r\n"));
  await assert.rejects(get("/ssh"), ProtocolError);
});

test("to an http proxy, a GET is sent in absolute form with the proxy's credentials", async () => {
  answers.set("http://images.castra.invalid:8080/disk.img?v=1", (s) =>
    s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n`), BODY])),
  );
  const proxy = parseProxy("HTTP_PROXY", origin.replace("//", "//ann:pw@"));
  const conn = await openHttp(
    "http://images.castra.invalid:8080/disk.img?v=1",
    {},
    {
      stallTimeoutMs: 5000,
      proxy: () => proxy,
    },
  );
  assert.ok((await readAll(conn)).equals(BODY));
  const sent = requests.find((r) => r.startsWith("GET http://images.castra.invalid:8080/")) ?? "";
  assert.match(sent, /^GET http:\/\/images\.castra\.invalid:8080\/disk\.img\?v=1 HTTP\/1\.1\r\n/);
  assert.match(sent, /\r\nHost: images\.castra\.invalid:8080\r\n/);
  assert.match(
    sent,
    new RegExp(`\\r\\nProxy-Authorization: Basic ${Buffer.from("ann:pw").toString("base64")}\\r\\n`),
  );
});

test("a CONNECT answered with an error, or never answered, is the proxy's failure and not retried", async () => {
  const proxy = parseProxy("HTTPS_PROXY", origin);
  const open = (host: string, stallTimeoutMs = 5000) =>
    openHttp(`https://${host}/disk.img`, {}, { stallTimeoutMs, proxy: () => proxy }).then(
      () => assert.fail("expected the tunnel to fail"),
      (err: unknown) => err,
    );
  answers.set("refused.castra.invalid:443", (s) =>
    s.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"),
  );
  const refused = await open("refused.castra.invalid");
  assert.ok(refused instanceof ProxyError);
  assert.equal(refused.what, "refused a tunnel to refused.castra.invalid:443 (HTTP 403 Forbidden)");
  assert.equal(isRetriable(refused), false);
  assert.match(
    requests.at(-1) ?? "",
    /^CONNECT refused\.castra\.invalid:443 HTTP\/1\.1\r\nHost: refused\.castra\.invalid:443\r\n/,
  );

  answers.set("silent.castra.invalid:443", () => {});
  const silent = await open("silent.castra.invalid", 300);
  assert.ok(silent instanceof ProxyError);
  assert.equal(silent.what, "did not answer for 0.3 s");
});
