import assert from "node:assert/strict";
import { test } from "node:test";
import { makeLineLocator } from "./locate.js";
import { closestKey } from "./suggest.js";

const TEXT = `version = "0.1.0" # the format

[[vms]]
name = "a"
  [[vms.port_forwards]]
  host = 1
  [[vms.port_forwards]]
  host = 2

[[vms]]
name = "b#not-a-comment"
managed_image = { name = "x", version = "v1" }
  [[vms.port_forwards]]
  "host" = 3
[broker]
port = 7070
`;

test("field paths map to the line that sets them, counting array tables per parent", () => {
  const locate = makeLineLocator(TEXT);
  assert.equal(locate("version"), 1);
  assert.equal(locate("vms[0]"), 3);
  assert.equal(locate("vms[0].port_forwards[1].host"), 8);
  assert.equal(locate("vms[1].name"), 11);
  assert.equal(locate("vms[1].managed_image.version"), 12);
  assert.equal(locate("vms[1].port_forwards[0].host"), 14);
  assert.equal(locate("broker.port"), 16);
});

test("a path that is not in the text falls back to its closest written parent", () => {
  const locate = makeLineLocator(TEXT);
  assert.equal(locate("vms[1].memory"), 10);
  assert.equal(locate("vms[0].port_forwards[0].guest"), 5);
  assert.equal(locate("project.name"), undefined);
});

test("close spellings are suggested, distant ones are not", () => {
  const keys = ["name", "cpus", "memory", "ready_pattern", "port_forwards", "port"];
  assert.equal(closestKey("cpu", keys), "cpus");
  assert.equal(closestKey("memroy", keys), "memory");
  assert.equal(closestKey("readyPattern", keys), "ready_pattern");
  assert.equal(closestKey("prot", keys), "port");
  assert.equal(closestKey("mem", keys), "memory");
  assert.equal(closestKey("colour", keys), undefined);
  assert.equal(closestKey("x", keys), undefined);
});
