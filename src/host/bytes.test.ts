import assert from "node:assert/strict";
import { test } from "node:test";
import { formatBytes } from "./bytes.js";

const MiB = 1024 * 1024;

test("byte counts format with binary units for display", () => {
  assert.equal(formatBytes(2048 * MiB), "2.0 GiB");
  assert.equal(formatBytes(512 * MiB), "512 MiB");
  assert.equal(formatBytes(1536 * MiB), "1.5 GiB");
  assert.equal(formatBytes(127926784), "122.0 MiB"); // not a whole MiB: the VHD footer
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(12), "12 B");
});
