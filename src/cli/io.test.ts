import assert from "node:assert/strict";
import { test } from "node:test";
import { DataError } from "../errors.js";
import { captureIO, colorEnabled } from "./io.js";

test("colour follows the TTY unless NO_COLOR, FORCE_COLOR or TERM=dumb say otherwise", () => {
  assert.equal(colorEnabled(true, {}), true);
  assert.equal(colorEnabled(false, {}), false);
  assert.equal(colorEnabled(true, { NO_COLOR: "1" }), false);
  assert.equal(colorEnabled(false, { FORCE_COLOR: "1" }), true);
  assert.equal(colorEnabled(true, { NO_COLOR: "1", FORCE_COLOR: "1" }), true);
  assert.equal(colorEnabled(true, { FORCE_COLOR: "0" }), false);
  assert.equal(colorEnabled(true, { FORCE_COLOR: "false" }), false);
  assert.equal(colorEnabled(true, { TERM: "dumb" }), false);
  assert.equal(colorEnabled(false, { TERM: "dumb", FORCE_COLOR: "1" }), true);
  assert.equal(colorEnabled(true, { FORCE_COLOR: "1" }, true), false);
});

test("an error prints a headline, its detail and a hint, and no stack unless asked", () => {
  const io = captureIO({ cwd: "/" });
  const err = new DataError("castra.toml is invalid", {
    detail: "vms[0].cpus: must be at least 1",
    hint: "fix it",
  });
  io.error(err);
  assert.equal(
    io.stderr(),
    "error: castra.toml is invalid\n  vms[0].cpus: must be at least 1\nhint: fix it\n",
  );
  io.error(err, true);
  assert.match(io.stderr(), /at .*io\.test\.ts/);
});

test("the live region is silent without a TTY and redraws in place on one", () => {
  const plain = captureIO({ cwd: "/" });
  const region = plain.live();
  region.set("vm", "starting");
  assert.equal(plain.stderr(), "");

  const tty = captureIO({ cwd: "/", isTTY: true, env: { NO_COLOR: "1" } });
  const live = tty.live();
  live.set("a", "a: starting");
  live.set("b", "b: starting");
  live.set("a", "a: ready");
  const screen = tty.stderr();
  assert.ok(screen.endsWith("\x1b[2F\x1b[2Ka: ready\n\x1b[2Kb: starting\n"));
});
