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

/** Row 8: `castra logs --tail 200` on a 200 MB serial log against `tail -n 200` of the same file. */
export async function logsRow(bench: Bench): Promise<RowResult> {
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
  return {
    id: 8,
    figure: "`castra logs --tail 200`, 200 MB serial log",
    baseline: "`tail -n 200`",
    unit: "ms",
    castra,
    base: tail,
    goal: { kind: "time-ratio", max: 3 },
    note:
      `on a 2 MB log of the same lines castra takes ${castraSmall.median.toFixed(1)} ms (the 200 MB log: ` +
      `${signed(castra.median - castraSmall.median)} ms; it reads from the end); ` +
      `\`node -e ''\` alone takes ${node.median.toFixed(1)} ms, ${(node.median / tail.median).toFixed(1)}× tail`,
  };
}

function signed(ms: number): string {
  return `${ms >= 0 ? "+" : "−"}${Math.abs(ms).toFixed(1)}`;
}
