import assert from "node:assert/strict";
import { test } from "node:test";
import { formatTable } from "./table.js";

test("formatTable pads columns and leaves no trailing spaces", () => {
  assert.deepEqual(
    formatTable(
      ["A", "BB"],
      [
        ["long", ""],
        ["x", "y"],
      ],
    ),
    ["A     BB", "long", "x     y"],
  );
});

test("a painter colours cells after padding, so widths count only the visible text", () => {
  const lines = formatTable(["VM", "STATE"], [["web", "running"]], (cell, column, row) =>
    row >= 0 && column === 0 ? `<${cell}>` : cell,
  );
  assert.deepEqual(lines, ["VM   STATE", "<web>  running"]);
});
