import assert from "node:assert/strict";
import { test } from "node:test";
import { makeColors } from "./colors.js";

test("colours wrap text in SGR codes only when enabled, and nested styles survive an inner close", () => {
  const on = makeColors(true);
  assert.equal(on.red("x"), "\x1b[31mx\x1b[39m");
  assert.equal(on.bold(`a ${on.dim("b")} c`), "\x1b[1ma \x1b[2mb\x1b[22m\x1b[1m c\x1b[22m");
  const off = makeColors(false);
  for (const name of ["bold", "dim", "red", "green", "yellow", "cyan"] as const)
    assert.equal(off[name]("x"), "x");
});
