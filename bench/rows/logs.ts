import { mkdir, open } from "node:fs/promises";
import { join } from "node:path";
import { type Bench, castraArgv, castraEnv, newProject } from "../lib/castra.js";
import { compare } from "../lib/measure.js";
import { mustRun } from "../lib/procs.js";
import type { RowResult } from "../lib/report.js";

const BIG = 200 * 1e6;
const SMALL = 2 * 1e6;

/** A serial console log of about `bytes`: numbered kernel-style lines. */
async function writeSerialLog(path: string, bytes: number): Promise<void> {
  const handle = await open(path, "w");
  try {
    let written = 0;
    let n = 0;
    while (written < bytes) {
      const lines: string[] = [];
      for (let i = 0; i < 50_000; i++, n++) {
        const t = (n / 1000).toFixed(6).padStart(12);
        lines.push(`[${t}] castra-bench: serial console line ${n} of a long-running guest, nothing to see\n`);
      }
      const chunk = Buffer.from(lines.join(""));
      await handle.write(chunk);
      written += chunk.length;
    }
  } finally {
    await handle.close();
  }
}

async function projectWithSerialLog(bench: Bench, name: string, bytes: number): Promise<string> {
  const dir = await newProject(bench, name);
  await mkdir(join(dir, ".castra", "logs"), { recursive: true });
  await writeSerialLog(join(dir, ".castra", "logs", "alpine-serial.log"), bytes);
  return dir;
}

/**
 * Rows 8 and 9: `castra logs --tail 200` on a 200 MB serial log against the same command on a 2 MB log (it
 * reads from the end, so size must not matter) and against `node -e ''` (what any Node program costs).
 * `tail -n 200` is in the note: no Node program can come near it.
 */
export async function logsRows(bench: Bench): Promise<RowResult[]> {
  bench.log("logs: writing a 200 MB and a 2 MB serial log");
  const big = await projectWithSerialLog(bench, "logs-200mb", BIG);
  const small = await projectWithSerialLog(bench, "logs-2mb", SMALL);
  const env = castraEnv();
  const logs = castraArgv(bench, ["logs", "--tail", "200"]);
  const serial = join(big, ".castra", "logs", "alpine-serial.log");
  bench.log(`logs: ${bench.warmup} warm-up + ${bench.runs * 3} runs of castra logs and tail`);
  const [castra, tail, castraSmall, node] = await compare(
    [
      { name: "castra", sample: async () => (await mustRun(logs, { cwd: big, env })).ms },
      { name: "tail", sample: async () => (await mustRun(["tail", "-n", "200", serial])).ms },
      { name: "castra 2 MB", sample: async () => (await mustRun(logs, { cwd: small, env })).ms },
      { name: "node", sample: async () => (await mustRun([process.execPath, "-e", ""])).ms },
    ],
    { warmup: bench.warmup, runs: bench.runs * 3 },
  );
  const figure = "`castra logs --tail 200`, 200 MB serial log";
  return [
    {
      id: 8,
      figure,
      baseline: "the same on a 2 MB log",
      unit: "ms",
      castra,
      base: castraSmall,
      goal: { kind: "time-ratio", max: 1.1 },
      note: `the 200 MB log costs ${signed(castra.median - castraSmall.median)} ms more: it reads from the end`,
    },
    {
      id: 9,
      figure,
      baseline: "`node -e ''`",
      unit: "ms",
      castra,
      base: node,
      goal: { kind: "time-margin", maxMs: 100 },
      note:
        `\`tail -n 200\` takes ${tail.median.toFixed(1)} ms (castra ${(castra.median / tail.median).toFixed(1)}×); ` +
        `\`node -e ''\` alone is ${(node.median / tail.median).toFixed(1)}× tail`,
    },
  ];
}

function signed(ms: number): string {
  return `${ms >= 0 ? "+" : "−"}${Math.abs(ms).toFixed(1)}`;
}
