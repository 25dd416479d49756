import assert from "node:assert/strict";
import { isIP } from "node:net";
import { test } from "node:test";
import { isIPv4, parseCidr } from "./cidr.js";

test("isIPv4 agrees with node:net on dotted quads, leading zeros and out-of-range octets", () => {
  for (const text of [
    "127.0.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "1.2.3",
    "01.2.3.4",
    "256.1.1.1",
    "::1",
    "a.b.c.d",
    "1.2.3.4 ",
  ])
    assert.equal(isIPv4(text), isIP(text) === 4, text);
});

test("parseCidr reads a.b.c.d/n and refuses other forms", () => {
  assert.deepEqual(parseCidr("169.254.0.0/16"), { address: 0xa9fe0000, prefix: 16, mask: 0xffff0000 });
  assert.equal(parseCidr("10.0.2.0/33"), undefined);
  assert.equal(parseCidr("fd00::/8"), undefined);
});
