import { readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import type { Series } from "./measure.js";
import { firstLine } from "./procs.js";

/** How a row's figure is judged against its goal. */
export type Goal =
  | { kind: "time-ratio"; max: number }
  | { kind: "throughput-ratio"; min: number }
  /** Measured and reported, with no goal to meet (the issue names the figure, not a bound). */
  | { kind: "report" }
  /** castra's median at most the baseline's plus `maxMs`. */
  | { kind: "time-margin"; maxMs: number }
  | { kind: "value"; max: number; unit: string };

export interface RowResult {
  id: number;
  figure: string;
  baseline: string;
  unit: string;
  castra: Series;
  base?: Series;
  goal: Goal;
  /** Set when the row could not run; the row fails with this reason. */
  error?: string;
  note?: string;
}

/** The number compared with the goal: a ratio of medians, or the castra median itself. */
export function figureOf(row: RowResult): number {
  if (row.goal.kind === "value" || row.goal.kind === "report" || !row.base) return row.castra.median;
  if (row.goal.kind === "time-margin") return row.castra.median - row.base.median;
  return row.castra.median / row.base.median;
}

export function passes(row: RowResult): boolean {
  if (row.error) return false;
  const value = figureOf(row);
  if (row.goal.kind === "time-ratio") return value <= row.goal.max;
  if (row.goal.kind === "throughput-ratio") return value >= row.goal.min;
  if (row.goal.kind === "time-margin") return value <= row.goal.maxMs;
  if (row.goal.kind === "report") return true;
  return value <= row.goal.max;
}

function goalText(goal: Goal): string {
  if (goal.kind === "time-ratio") return `≤ ${goal.max.toFixed(2)}×`;
  if (goal.kind === "throughput-ratio") return `≥ ${goal.min.toFixed(2)}×`;
  if (goal.kind === "time-margin") return `≤ +${goal.maxMs} ms`;
  if (goal.kind === "report") return "(reported)";
  return `≤ ${goal.max} ${goal.unit}`;
}

function resultText(row: RowResult): string {
  if (row.goal.kind === "report" && !row.error) return "measured";
  return passes(row) ? "PASS" : "FAIL";
}

/** The compared figure as the table shows it: a ratio, a margin in ms, or nothing for plain values. */
function ratioText(row: RowResult): string {
  if (row.goal.kind === "value" || row.goal.kind === "report") return "—";
  if (row.goal.kind === "time-margin") return `+${figureOf(row).toFixed(0)} ms`;
  return `${figureOf(row).toFixed(2)}×`;
}

function spread(s: Series | undefined, unit: string): string {
  if (!s) return "—";
  const digits = s.median >= 100 ? 0 : 1;
  return `${s.median.toFixed(digits)} ${unit} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** The results as a Markdown table (also readable on a terminal). */
export function table(rows: RowResult[]): string {
  const lines = [
    "| # | figure | castra: median (min–max) | compared with: median (min–max) | ratio | goal | result |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const row of rows) {
    const ratio = row.error ? "—" : ratioText(row);
    const base = row.base ? `${row.baseline}: ${spread(row.base, row.unit)}` : row.baseline;
    const castra = row.error ? `error: ${row.error}` : spread(row.castra, row.unit);
    lines.push(
      `| ${row.id} | ${row.figure} | ${castra} | ${base} | ${ratio} | ${goalText(row.goal)} | ${resultText(row)} |`,
    );
  }
  return lines.join("\n");
}

export interface RunFacts {
  startedAt: Date;
  seconds: number;
  runs: number;
  warmup: number;
  loadBefore: number[];
  loadAfter: number[];
  server: string;
  workDir: string;
}

/** What the numbers were measured on: they mean little without it. */
export async function describeMachine(facts: RunFacts): Promise<string> {
  const cpus = os.cpus();
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(", ");
  const lines = [
    `- CPU: ${cpus[0]?.model ?? "unknown"} × ${cpus.length} (${os.arch()})`,
    `- memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; kernel ${os.type()} ${os.release()}`,
    `- work directory ${facts.workDir} on ${await firstLine(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", facts.workDir])}`,
    `- node ${process.version}; ${await firstLine(["qemu-system-x86_64", "--version"])}; ${(await firstLine(["curl", "--version"])).split(" ").slice(0, 2).join(" ")}`,
    `- file server: ${facts.server} on 127.0.0.1`,
    // Node reads this file on every start, before any of castra's code (about 40 ms on the machine of RESULTS.md).
    `- NODE_EXTRA_CA_CERTS: ${process.env.NODE_EXTRA_CA_CERTS ? `set (${process.env.NODE_EXTRA_CA_CERTS})` : "not set"}`,
    `- load average (1, 5, 15 min) before: ${load(facts.loadBefore)}; after: ${load(facts.loadAfter)}`,
    `- ${facts.runs} measured runs per side after ${facts.warmup} warm-up, sides alternating; run on ${facts.startedAt.toISOString()}, took ${Math.round(facts.seconds)} s`,
  ];
  return lines.join("\n");
}

const START = "<!-- bench:results:start -->";
const END = "<!-- bench:results:end -->";

/** Replaces the generated block of RESULTS.md, keeping every hand-written line around it. */
export async function writeResults(path: string, rows: RowResult[], machine: string, notes: string[]) {
  const block = [
    START,
    "## Latest run (written by `npm run bench`)",
    "",
    machine,
    "",
    table(rows),
    "",
    ...notes.map((n) => `- ${n}`),
    END,
  ].join("\n");
  const existing = await readFile(path, "utf8").catch(() => "# castra benchmark\n\n");
  const at = existing.indexOf(START);
  const end = existing.indexOf(END);
  const next =
    at >= 0 && end > at
      ? `${existing.slice(0, at)}${block}${existing.slice(end + END.length)}`
      : `${existing.trimEnd()}\n\n${block}\n`;
  await writeFile(path, next);
}
