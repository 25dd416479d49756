import assert from "node:assert/strict";
import { test } from "node:test";
import { shortHash } from "./short-hash.js";

test("shortHash is 64-bit FNV-1a: the published test vectors, 16 hex digits", () => {
  assert.equal(shortHash(""), "cbf29ce484222325");
  assert.equal(shortHash("a"), "af63dc4c8601ec8c");
  assert.equal(shortHash("foobar"), "85944171f73967e8");
  assert.notEqual(shortHash("/p/.castra\0web"), shortHash("/p/.castra\0db"));
});
