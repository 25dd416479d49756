import assert from "node:assert/strict";
import { test } from "node:test";
import { redactUrlCredentials } from "./redact.js";

test("passwords in proxy settings become ***, with or without a scheme; nothing else changes", () => {
  const cases: [string, string][] = [
    ["http://user:secret@proxy:3128", "http://user:***@proxy:3128"],
    ["https://user:p/w:x@proxy:3128/", "https://user:***@proxy:3128/"],
    ["user:pass@proxy:3128", "user:***@proxy:3128"],
    ["http://proxy:3128", "http://proxy:3128"],
    ["http://token@proxy", "http://token@proxy"],
    ["localhost,.internal", "localhost,.internal"],
  ];
  for (const [given, shown] of cases) assert.equal(redactUrlCredentials(given), shown, given);
});
