import assert from "node:assert/strict";
import { test } from "node:test";
import { redactUrl } from "./redact-url.js";

test("a password is hidden, the user name and the rest of the URL stay", () => {
  assert.equal(redactUrl("http://user:password@host/"), "http://user:***@host/");
  assert.equal(
    redactUrl("https://ann:s%20cret@mirror.lan:8443/castra/disk.vhd?x=1"),
    "https://ann:***@mirror.lan:8443/castra/disk.vhd?x=1",
  );
  assert.equal(redactUrl("http://user:@host/"), "http://user:***@host/");
});

test("a lone user name is hidden too: it is often a token", () => {
  assert.equal(redactUrl("https://ghp_abc123@host/x"), "https://***@host/x");
});

test("a password with a raw @ or : is hidden whole", () => {
  assert.equal(redactUrl("http://u:p@ss:w0rd@host/a@b"), "http://u:***@host/a@b");
});

test("URLs inside a message are redacted, other text and URLs without credentials are left alone", () => {
  const text = "GET http://a:b@one/x failed; http://two/y is fine; mail me at ann@example.com";
  assert.equal(
    redactUrl(text),
    "GET http://a:***@one/x failed; http://two/y is fine; mail me at ann@example.com",
  );
  assert.equal(redactUrl("file:///srv/a@b.img"), "file:///srv/a@b.img");
});

test("text that is not a URL is scrubbed the same way", () => {
  assert.equal(
    redactUrl("CASTRA_MIRROR is not a URL: http//u:p@h"),
    "CASTRA_MIRROR is not a URL: http//u:***@h",
  );
  assert.equal(redactUrl("ht tp://u:pw@h"), "ht tp://u:***@h");
});
