import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Bench, castraEnv, down, mustCastra, newProject } from "../lib/castra.js";
import { smallGuestCatalog } from "../lib/guest-images.js";
import { series } from "../lib/measure.js";
import type { RowResult } from "../lib/report.js";

const MIB = 1024 * 1024;

/** One cycle's figures: a cold `up`, the `suspend` after it, and the `up` that resumes. */
interface Cycle {
  cold: number;
  suspend: number;
  resume: number;
  stateBytes: number;
}

/**
 * Rows 10–12: `castra up` of a suspended test guest until ready, against a cold `castra up` of the same guest
 * (image cached, overlay kept), with 256 MiB and with 1 GiB of memory; and `castra suspend` until QEMU is gone,
 * with the saved state's size against the guest's memory.
 */
export async function suspendRows(bench: Bench): Promise<RowResult[]> {
  const catalog = await smallGuestCatalog(bench);
  const small = await cycles(bench, catalog, 256);
  const large = await cycles(bench, catalog, 1024);
  const resumeRow = (id: number, memory: string, c: Cycle[]): RowResult => ({
    id,
    figure: `\`castra up\` of a suspended guest until ready, ${memory} (resume)`,
    baseline: "cold `castra up` of the same guest",
    unit: "ms",
    castra: series(c.map((x) => x.resume)),
    base: series(c.map((x) => x.cold)),
    goal: { kind: "time-ratio", max: 0.25 },
    note: "goal 0.1×; the resumed guest is ready when QMP reports it running (its ready line was printed before)",
  });
  const state = (c: Cycle[], memoryMiB: number) => {
    const s = series(c.map((x) => x.stateBytes / MIB));
    return `${s.median.toFixed(0)} MiB for ${memoryMiB} MiB of memory (${((s.median / memoryMiB) * 100).toFixed(0)}%)`;
  };
  return [
    resumeRow(10, "256 MiB", small),
    resumeRow(11, "1 GiB", large),
    {
      id: 12,
      figure: "`castra suspend` until QEMU is gone, 1 GiB guest",
      baseline: "—",
      unit: "ms",
      castra: series(large.map((x) => x.suspend)),
      goal: { kind: "report" },
      note:
        `with 256 MiB: ${series(small.map((x) => x.suspend)).median.toFixed(0)} ms; saved state on disk: ` +
        `${state(small, 256)}, ${state(large, 1024)}`,
    },
  ];
}

async function cycles(bench: Bench, catalog: string, memoryMiB: number): Promise<Cycle[]> {
  const dir = await newProject(bench, `suspend-${memoryMiB}`);
  const env = castraEnv(catalog);
  await writeFile(
    join(dir, "castra.toml"),
    `[[vms]]\nname = "alpine"\nmanaged_image = { name = "alpine-minimal", version = "v1" }\nmemory = "${memoryMiB} MiB"\n`,
  );
  await mustCastra(bench, ["images", "pull"], { cwd: dir, env });
  const runs = bench.runs;
  bench.log(
    `suspend ${memoryMiB} MiB: ${bench.warmup} warm-up + ${runs} cycles of up, suspend, up (resume), down`,
  );
  const taken: Cycle[] = [];
  for (let i = 0; i < bench.warmup + runs; i++) {
    const cold = (await mustCastra(bench, ["up"], { cwd: dir, env })).ms;
    const suspend = (await mustCastra(bench, ["suspend"], { cwd: dir, env })).ms;
    const saved = JSON.parse(
      await readFile(join(dir, ".castra", "alpine-overlay.qcow2.suspend.json"), "utf8"),
    );
    const resume = (await mustCastra(bench, ["up"], { cwd: dir, env })).ms;
    await down(bench, dir, env, 10);
    if (i >= bench.warmup) taken.push({ cold, suspend, resume, stateBytes: saved.stateBytes });
  }
  return taken;
}
