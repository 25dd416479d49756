import assert from "node:assert/strict";
import { test } from "node:test";
import { parseMemorySize } from "./memory.js";

const MiB = 1024 * 1024;

test("memory sizes accept binary units with or without a space", () => {
  assert.equal(parseMemorySize("2048 MiB"), 2048 * MiB);
  assert.equal(parseMemorySize("2 GiB"), 2048 * MiB);
  assert.equal(parseMemorySize("512M"), 512 * MiB);
  assert.equal(parseMemorySize("1G"), 1024 * MiB);
  assert.equal(parseMemorySize("1024 KiB"), MiB);
  assert.equal(parseMemorySize("1.5 GiB"), 1536 * MiB);
  assert.equal(parseMemorySize("4gb"), 4096 * MiB);
  assert.equal(parseMemorySize("1048576 B"), MiB);
  assert.equal(parseMemorySize(" 1 TiB "), 1024 * 1024 * MiB);
});

test("a size without a unit is refused with the MiB spelling to use", () => {
  assert.throws(() => parseMemorySize("2048"), /has no unit: write "2048 MiB"/);
});

test("nonsense, unknown units and sizes below or between whole MiB are refused with an example", () => {
  assert.throws(() => parseMemorySize("lots"), /not a size.*"2048 MiB"/);
  assert.throws(() => parseMemorySize("-1 GiB"), /not a size/);
  assert.throws(() => parseMemorySize("2 PiB"), /"PiB" is not a size unit/);
  assert.throws(() => parseMemorySize("2 bib"), /not a size unit/);
  assert.throws(() => parseMemorySize("0 MiB"), /at least 1 MiB/);
  assert.throws(() => parseMemorySize("100 KiB"), /whole number of MiB/);
  assert.throws(() => parseMemorySize("1.3 MiB"), /whole number of MiB/);
  assert.throws(() => parseMemorySize(""), /not a size/);
});
