import { type Bench, castraEnv, down, mustCastra, newProject } from "../lib/castra.js";
import { largeGuestCatalog, smallGuestCatalog } from "../lib/guest-images.js";
import { type Contender, compare } from "../lib/measure.js";
import type { RowResult } from "../lib/report.js";

/**
 * Row 3: a warm `castra up --no-wait` (the image already cached) in an empty directory, from process start
 * until it exits with QEMU running, with a 1 GiB root disk against a 64 MiB one. `down` runs between
 * samples, untimed.
 */
export async function warmUpRow(bench: Bench): Promise<RowResult> {
  bench.log("warm up: building the 1 GiB root disk and caching both images");
  const side = async (name: string, catalog: string): Promise<Contender> => {
    const dir = await newProject(bench, `warm-${name}`);
    const env = castraEnv(catalog);
    await mustCastra(bench, ["images", "pull"], { cwd: dir, env });
    return {
      name,
      sample: async () => {
        const { ms } = await mustCastra(bench, ["up", "--no-wait"], { cwd: dir, env });
        await down(bench, dir, env);
        return ms;
      },
    };
  };
  const largeSide = await side("1g", await largeGuestCatalog(bench));
  const smallSide = await side("64m", await smallGuestCatalog(bench));
  bench.log(`warm up: ${bench.warmup} warm-up + ${bench.runs} runs of each side`);
  const [large, small] = await compare([largeSide, smallSide], { warmup: bench.warmup, runs: bench.runs });
  return {
    id: 3,
    figure: "warm `castra up --no-wait` until QEMU runs, 1 GiB root disk",
    baseline: "64 MiB root disk",
    unit: "ms",
    castra: large,
    base: small,
    goal: { kind: "time-ratio", max: 1.2 },
  };
}
