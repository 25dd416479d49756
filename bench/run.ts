// `npm run bench [-- --runs N --warmup N --only 1,2,8 --no-write --castra FILE]`: measures every figure of
// issue #6 against its baseline in one run on this machine, prints the table and writes it to bench/RESULTS.md
// (a full run of this tree only; --only and --castra runs just print).
import { mkdtemp, realpath, rm } from "node:fs/promises";
import os from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Bench } from "./lib/castra.js";
import { atCleanup, cleanUp, mustRun } from "./lib/procs.js";
import { describeMachine, passes, type RowResult, table, writeResults } from "./lib/report.js";
import { bootRow } from "./rows/boot.js";
import { cliStartRows } from "./rows/cli-start.js";
import { downloadRows } from "./rows/download.js";
import { logsRows } from "./rows/logs.js";
import { metadataRows } from "./rows/metadata.js";
import { mountRows } from "./rows/mounts.js";
import { suspendRows } from "./rows/suspend.js";
import { warmUpRow } from "./rows/warm-up.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS = join(ROOT, "bench", "RESULTS.md");

interface Group {
  ids: number[];
  run: (bench: Bench) => Promise<RowResult[]>;
}

let server = "none (the download rows did not run)";
const GROUPS: Group[] = [
  { ids: [1, 2], run: cliStartRows },
  { ids: [3], run: async (b) => [await warmUpRow(b)] },
  {
    ids: [4, 5, 6],
    run: async (b) => {
      const result = await downloadRows(b);
      server = result.server;
      return result.rows;
    },
  },
  { ids: [7], run: async (b) => [await bootRow(b)] },
  { ids: [8, 9], run: logsRows },
  { ids: [10, 11, 12], run: suspendRows },
  { ids: [13, 14, 15, 16, 17, 18], run: metadataRows },
  { ids: [19, 20, 21], run: mountRows },
];

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

/** Other work on the machine skews every figure: wait (a while) for the 1-minute load to fall below 1. */
async function waitForQuiet(maxSeconds: number): Promise<void> {
  const deadline = Date.now() + maxSeconds * 1000;
  const load = () => os.loadavg()[0] ?? 0;
  while (load() >= 1 && Date.now() < deadline) {
    log(`load average ${load().toFixed(2)}: waiting for the machine to be quiet`);
    await sleep(10_000);
  }
  if ((os.loadavg()[0] ?? 0) >= 1)
    log("the machine is still busy: measuring anyway (see the load in RESULTS.md)");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "5" },
      warmup: { type: "string", default: "1" },
      only: { type: "string" },
      "no-write": { type: "boolean", default: false },
      "quiet-wait": { type: "string", default: "60" },
      // Measure an existing build (e.g. one made from an older commit) instead of building this tree.
      castra: { type: "string" },
    },
  });
  const only = values.only ? new Set(values.only.split(",").map(Number)) : undefined;
  const startedAt = new Date();
  await waitForQuiet(Number(values["quiet-wait"]));
  const loadBefore = os.loadavg();

  const work = await realpath(await mkdtemp(join(os.tmpdir(), "castra-bench-")));
  atCleanup(() => rm(work, { recursive: true, force: true }));
  const castraJs = values.castra ? resolve(values.castra) : join(work, "dist", "castra.cjs");
  if (values.castra) log(`measuring ${castraJs}`);
  else {
    log(`building castra into ${work}/dist`);
    await mustRun([process.execPath, join(ROOT, "scripts", "build.mjs"), "--outdir", join(work, "dist")], {
      cwd: ROOT,
    });
  }
  const bench: Bench = {
    castraJs,
    work,
    runs: Number(values.runs),
    warmup: Number(values.warmup),
    log,
  };

  const rows: RowResult[] = [];
  for (const group of GROUPS) {
    if (only && !group.ids.some((id) => only.has(id))) continue;
    try {
      const done = await group.run(bench);
      rows.push(...done);
      // Every sample, so a reader can judge the noise behind a median.
      const list = (xs: number[] | undefined) => (xs ?? []).map((x) => x.toFixed(1)).join(" ");
      for (const r of done)
        log(`row ${r.id} samples: castra ${list(r.castra.samples)}; baseline ${list(r.base?.samples)}`);
    } catch (err) {
      log(`rows ${group.ids.join(", ")} failed: ${(err as Error).stack ?? err}`);
      for (const id of group.ids) {
        const failed = { samples: [0], median: 0, min: 0, max: 0 };
        const error = (err as Error).message.split("\n")[0] ?? "failed";
        rows.push({
          id,
          figure: `row ${id}`,
          baseline: "—",
          unit: "",
          castra: failed,
          goal: { kind: "value", max: 0, unit: "" },
          error,
        });
      }
    }
  }

  const machine = await describeMachine({
    startedAt,
    seconds: (Date.now() - startedAt.getTime()) / 1000,
    runs: bench.runs,
    warmup: bench.warmup,
    loadBefore,
    loadAfter: os.loadavg(),
    server,
    workDir: work,
  });
  const notes = rows.flatMap((r) => (r.note ? [`row ${r.id}: ${r.note}`] : []));
  process.stdout.write(`\n${machine}\n\n${table(rows)}\n\n${notes.map((n) => `- ${n}`).join("\n")}\n`);
  const judged = rows.filter((r) => r.goal.kind !== "report");
  const met = judged.filter(passes).length;
  process.stdout.write(`\n${met} of ${judged.length} goals met\n`);
  if (!values["no-write"] && !only && !values.castra) {
    await writeResults(RESULTS, rows, machine, notes);
    log(`wrote ${RESULTS}`);
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    log(`${signal}: stopping everything the bench started`);
    cleanUp().finally(() => process.exit(130));
  });
}

main()
  .catch((err) => {
    log(`failed: ${(err as Error).stack ?? err}`);
    process.exitCode = 1;
  })
  .finally(cleanUp);
