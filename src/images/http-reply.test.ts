import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BodyDecoder,
  type Framing,
  framingOf,
  headLength,
  MAX_TRAILER_BYTES,
  ProtocolError,
  parseHead,
} from "./http-reply.js";

function head(text: string) {
  return parseHead(Buffer.from(text, "latin1"));
}

/** Feeds `raw` to a decoder in pieces of `step` bytes; returns the body and whether it completed. */
function decode(framing: Framing, raw: string, step: number): { body: string; done: boolean } {
  const decoder = new BodyDecoder(framing);
  const data = Buffer.from(raw, "latin1");
  let body = "";
  let done = false;
  for (let at = 0; at < data.length && !done; at += step) {
    done = decoder.feed(data.subarray(at, at + step), (piece) => {
      body += piece.toString("latin1");
    });
  }
  return { body, done };
}

test("the head ends at the first blank line, whatever follows it", () => {
  assert.equal(headLength(Buffer.from("HTTP/1.1 200 OK\r\nA: b\r\n")), -1);
  assert.equal(headLength(Buffer.from("HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody")), 25);
});

test("status, reason and headers are read as Node's http reads them", () => {
  const reply = head(
    "HTTP/1.0 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\nX-A: 1\r\nx-a:  2 \r\n\r\n",
  );
  assert.equal(reply.statusCode, 206);
  assert.equal(reply.statusMessage, "Partial Content");
  assert.equal(reply.headers["content-range"], "bytes 5-9/10");
  assert.equal(reply.headers["x-a"], "1, 2");
});

test("a reply that is not HTTP/1.x, or smuggles a header, is refused", () => {
  assert.throws(() => head("SSH-2.0-OpenSSH_9.2\r\n\r\n"), ProtocolError);
  assert.throws(() => head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n continued\r\n\r\n"), ProtocolError);
  assert.throws(() => head("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"), ProtocolError);
  assert.throws(() => headLength(Buffer.alloc(70 * 1024, 0x41)), ProtocolError);
});

test("the body is framed by Transfer-Encoding, then Content-Length, then the connection's end", () => {
  const framing = (headers: string, status = "200 OK") =>
    framingOf(head(`HTTP/1.1 ${status}\r\n${headers}\r\n`));
  assert.deepEqual(framing("Content-Length: 42\r\n"), { kind: "length", bytes: 42 });
  assert.deepEqual(framing("Content-Length: 42, 42\r\n"), { kind: "length", bytes: 42 });
  assert.deepEqual(framing("Transfer-Encoding: chunked\r\nContent-Length: 42\r\n"), { kind: "chunked" });
  assert.deepEqual(framing("Transfer-Encoding: gzip\r\n"), { kind: "close" });
  assert.deepEqual(framing(""), { kind: "close" });
  assert.deepEqual(framing("Content-Length: 42\r\n", "304 Not Modified"), { kind: "length", bytes: 0 });
  assert.throws(() => framing("Content-Length: 42, 43\r\n"), ProtocolError);
  assert.throws(() => framing("Content-Length: -1\r\n"), ProtocolError);
});

test("a Content-Length body stops at its length, however the bytes are split", () => {
  for (const step of [1, 3, 100]) {
    assert.deepEqual(decode({ kind: "length", bytes: 5 }, "hello and more", step), {
      body: "hello",
      done: true,
    });
  }
});

test("a chunked body is decoded across any split, extensions and trailers included", () => {
  const raw = "5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nnext reply";
  for (const step of [1, 2, 7, 1000]) {
    assert.deepEqual(decode({ kind: "chunked" }, raw, step), { body: "hello 0123456789", done: true });
  }
});

test("trailer fields are skipped, long ones too, and a trailer section past its cap ends the reply", () => {
  const long = `X-Long: ${"v".repeat(10_000)}\r\n`;
  for (const step of [1, 3, 4096]) {
    assert.deepEqual(decode({ kind: "chunked" }, `2\r\nhi\r\n0\r\n${long}\r\n`, step), {
      body: "hi",
      done: true,
    });
  }
  const endless = `2\r\nhi\r\n0\r\n${"X-Drip: 1\r\n".repeat(MAX_TRAILER_BYTES / 4)}`;
  assert.deepEqual(decode({ kind: "chunked" }, endless, 1000), { body: "hi", done: true });
  const waiting = new BodyDecoder({ kind: "chunked" });
  waiting.feed(Buffer.from("2\r\nhi\r\n0\r\nX-Drip: 1\r\n"), () => {});
  assert.equal(waiting.bodyComplete, true, "the body is whole before the trailer section ends");
  assert.equal(waiting.completeAtClose, true);
});

test("a chunked body cut short is not complete, and a chunk longer than announced is refused", () => {
  const cut = new BodyDecoder({ kind: "chunked" });
  cut.feed(Buffer.from("5\r\nhel"), () => {});
  assert.equal(cut.completeAtClose, false);
  assert.throws(() => decode({ kind: "chunked" }, "2\r\nhello\r\n0\r\n\r\n", 100), ProtocolError);
  assert.throws(() => decode({ kind: "chunked" }, "zz\r\nhello\r\n", 100), ProtocolError);
});

test("a body delimited by the connection's end takes everything and is complete at close", () => {
  const decoder = new BodyDecoder({ kind: "close" });
  let body = "";
  assert.equal(
    decoder.feed(Buffer.from("all of it"), (piece) => {
      body += piece;
    }),
    false,
  );
  assert.equal(body, "all of it");
  assert.equal(decoder.completeAtClose, true);
});
