import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { catalogImageScenarios } from "./catalog-images.js";
import { downloadTrustScenarios } from "./download-trust.js";
import { downloadScenarios } from "./downloads.js";
import { testGuest } from "./fixtures.js";
import { fuzzScenarios } from "./fuzz.js";
import { abortActiveScenario, type Row, runScenario, type Scenario } from "./harness.js";
import { isolationScenarios } from "./isolation.js";
import { plantedScenarios } from "./planted.js";
import { secretScenarios } from "./secrets.js";
import { securityScenarios } from "./security.js";
import { stateScenarios } from "./state.js";
import { vmScenarios } from "./vm.js";

/**
 * `npm run test:faults`: every fault and security case of issues 7 and 14 against the freshly built CLI, real QEMU
 * (TCG) and a fault-injecting HTTP server on 127.0.0.1. Prints `case | expected | observed | PASS/FAIL`, then
 * `N passed, M failed`; exits 1 when anything failed. `npm run test:faults -- <regex>` runs matching scenarios.
 */

// Ubuntu's default umask for users: files castra creates must still be writable by their owner only.
process.umask(0o002);

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

const all: Scenario[] = [
  ...downloadScenarios,
  ...downloadTrustScenarios,
  ...vmScenarios,
  ...stateScenarios,
  ...securityScenarios,
  ...secretScenarios,
  ...catalogImageScenarios,
  ...plantedScenarios,
  ...isolationScenarios,
  ...fuzzScenarios,
];

// Ctrl-C of the run: the scenario in progress is stopped and cleaned up (its QEMUs are in other groups).
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void abortActiveScenario().finally(() => process.exit(130));
  });
}

async function main(): Promise<number> {
  const filter = process.argv[2] ? new RegExp(process.argv[2], "i") : undefined;
  const chosen = filter ? all.filter((s) => filter.test(s.name)) : all;
  buildPrivateCopy();
  await testGuest();
  const started = Date.now();
  const rows: Row[] = [];
  for (const scenario of chosen) {
    const t0 = Date.now();
    const got = await runScenario(scenario);
    rows.push(...got);
    const failed = got.filter((r) => !r.pass).length;
    process.stderr.write(
      `# ${scenario.name}: ${got.length - failed}/${got.length} passed in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
    );
  }
  printTable(rows);
  const failed = rows.filter((r) => !r.pass).length;
  console.log(`\n(${chosen.length} scenarios in ${((Date.now() - started) / 1000).toFixed(0)} s)`);
  console.log(`${rows.length - failed} passed, ${failed} failed`);
  return failed === 0 && rows.length > 0 ? 0 : 1;
}

/**
 * Builds the CLI into a private directory, so another `npm run build` of dist/ cannot swap it mid-run.
 * CASTRA_FAULTS_BIN=<castra.cjs> runs the matrix against that build instead (e.g. an older commit's).
 */
function buildPrivateCopy(): void {
  if (process.env.CASTRA_FAULTS_BIN) return;
  const outdir = join(tmpdir(), `castra-faults-dist-${process.pid}`);
  execFileSync(process.execPath, ["scripts/build.mjs", "--outdir", outdir], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (existsSync(join(outdir, "castra.cjs"))) {
    process.env.CASTRA_FAULTS_BIN = join(outdir, "castra.cjs");
    process.on("exit", () => rmSync(outdir, { recursive: true, force: true }));
  }
}

function printTable(rows: Row[]): void {
  const cells = rows.map((r) => [r.name, r.expected, r.observed, r.pass ? "PASS" : "FAIL"]);
  const header = ["case", "expected", "observed", "PASS/FAIL"];
  const widths = header.map((h, i) =>
    Math.min(70, Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length))),
  );
  const line = (c: string[]) => `| ${c.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const c of cells) console.log(line(c));
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    console.log("0 passed, 1 failed");
    process.exitCode = 1;
  },
);
