import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Bench, castraArgv, castraEnv, down, mustCastra, newProject } from "../lib/castra.js";
import { smallGuestCatalog } from "../lib/guest-images.js";
import { compare } from "../lib/measure.js";
import { mustRun, type RunOptions } from "../lib/procs.js";
import type { RowResult } from "../lib/report.js";

const NODE_FLOOR = [process.execPath, "-e", ""];

/** Rows 1 and 2: how fast a command answers, against the floor of starting node at all. */
export async function cliStartRows(bench: Bench): Promise<RowResult[]> {
  return [await statusRow(bench), await versionRow(bench)];
}

async function wallTimes(bench: Bench, argv: string[], options: RunOptions, label: string) {
  // Short commands are noisy on a shared machine: three times the runs costs a few seconds.
  const runs = bench.runs * 3;
  bench.log(`${label}: ${bench.warmup} warm-up + ${runs} runs of each side`);
  return compare(
    [
      { name: "castra", sample: async () => (await mustRun(argv, options)).ms },
      { name: "node", sample: async () => (await mustRun(NODE_FLOOR, options)).ms },
    ],
    { warmup: bench.warmup, runs },
  );
}

/** `castra status` in a project with castra.toml and one VM (the test guest) started by `castra up --no-wait`. */
async function statusRow(bench: Bench): Promise<RowResult> {
  const dir = await newProject(bench, "status");
  const env = castraEnv(await smallGuestCatalog(bench));
  await writeFile(
    join(dir, "castra.toml"),
    '[project]\nname = "status"\n\n[[vms]]\nname = "guest"\n' +
      'managed_image = { name = "alpine-minimal", version = "v1" }\nmemory = "256 MiB"\n',
  );
  await mustCastra(bench, ["up", "--no-wait"], { cwd: dir, env });
  try {
    const [castra, node] = await wallTimes(bench, castraArgv(bench, ["status"]), { cwd: dir, env }, "status");
    return {
      id: 1,
      figure: "`castra status`, one VM running",
      baseline: "`node -e ''`",
      unit: "ms",
      castra,
      base: node,
      goal: { kind: "time-ratio", max: 1.5 },
    };
  } finally {
    await down(bench, dir, env);
  }
}

async function versionRow(bench: Bench): Promise<RowResult> {
  const dir = await newProject(bench, "version");
  const [castra, node] = await wallTimes(
    bench,
    castraArgv(bench, ["--version"]),
    { cwd: dir, env: castraEnv() },
    "--version",
  );
  return {
    id: 2,
    figure: "`castra --version`",
    baseline: "`node -e ''`",
    unit: "ms",
    castra,
    base: node,
    goal: { kind: "time-ratio", max: 1.5 },
  };
}
