import { runMetadataLoad } from "../../test/support/metadata-load.js";
import { type Bench, castraEnv, newProject, runCastra } from "../lib/castra.js";
import { testGuest } from "../lib/guest-images.js";
import { series } from "../lib/measure.js";
import type { RowResult } from "../lib/report.js";

const PAIRS = 40;
const FLOOD = 320;
const HOG_BYTES = 20 * 1024 * 1024;
/** The write deadline of docs/design.md: everything started for a hog is gone within it. */
const WRITE_DEADLINE_MS = 10_000;

/**
 * Rows 13–18 (issue 15): one test guest under TCG times `PAIRS` token+GET pairs the way tiny-cloud asks
 * (`nc` PUT, `wget` GET) against castra and, interleaved, against a plain HTTP server on the host through
 * QEMU's user network (the reference); then opens `FLOOD` connections to 169.254.169.254 and holds them; then
 * asks for a 20 MiB user-data it never reads. The host samples the PSS of every connector and the server.
 */
export async function metadataRows(bench: Bench): Promise<RowResult[]> {
  const guest = await testGuest();
  const dir = await newProject(bench, "metadata");
  const env = castraEnv();
  bench.log(
    `metadata: ${PAIRS} pairs per side, a flood of ${FLOOD} connections, a 20 MiB hog (one TCG boot)`,
  );
  const result = await runMetadataLoad({
    castra: (args) => runCastra(bench, args, { cwd: dir, env }),
    dir,
    biosDisk: guest.biosDisk,
    pairs: PAIRS + bench.warmup,
    flood: FLOOD,
    holdSeconds: 10,
    hogBytes: HOG_BYTES,
    timeoutMs: 900_000,
    log: (message) => bench.log(`metadata: ${message}`),
  });
  // The first round of each side warms the guest's page cache for nc and wget.
  const meta = series(result.meta.slice(bench.warmup));
  const ref = series(result.ref.slice(bench.warmup));
  const failed = `${result.failed.meta} of castra's and ${result.failed.ref} of the reference's pairs failed`;
  const { flood, hog } = result;
  const cleanup = Math.max(hog.connectorMs, hog.serverMs);
  const pair = "token+GET pair timed inside a TCG guest (`nc` PUT, `wget` GET)";
  return [
    {
      id: 13,
      figure: `metadata ${pair}, median`,
      baseline: "the same pairs to a plain HTTP server on the host",
      unit: "ms",
      castra: meta,
      base: ref,
      goal: { kind: "time-ratio", max: 2 },
      note: `${meta.samples.length} pairs per side, interleaved; ${failed}`,
    },
    {
      id: 14,
      figure: `metadata ${pair}, median`,
      baseline: "—",
      unit: "ms",
      castra: meta,
      goal: { kind: "value", max: 250, unit: "ms" },
    },
    {
      id: 15,
      figure: `metadata ${pair}, slowest`,
      baseline: `reference's slowest: ${ref.max.toFixed(0)} ms`,
      unit: "ms",
      castra: series([meta.max]),
      goal: { kind: "value", max: 500, unit: "ms" },
    },
    {
      id: 16,
      figure: `metadata flood of ${FLOOD} connections held open: peak extra PSS (connectors + server growth)`,
      baseline: "—",
      unit: "MB",
      castra: series([flood.peakExtraPssBytes / 1e6]),
      goal: { kind: "value", max: 100, unit: "MB" },
      note:
        `at most ${flood.peakConnectors} connectors alive at once, ${flood.opened} connections established when ` +
        `the guest counted; the server itself: ${(result.serverBaselinePssBytes / 1e6).toFixed(1)} MB PSS before the flood`,
    },
    {
      id: 17,
      figure: "metadata pair once the flood's connections are closed",
      baseline: "—",
      unit: "ms",
      castra: series([flood.afterOk ? flood.afterMs : Number.POSITIVE_INFINITY]),
      goal: { kind: "value", max: 1000, unit: "ms" },
    },
    {
      id: 18,
      figure:
        "metadata: a guest that never reads a 20 MiB user-data, until everything started for it is gone",
      baseline: `write deadline ${WRITE_DEADLINE_MS / 1000} s`,
      unit: "ms",
      castra: series([cleanup]),
      goal: { kind: "value", max: WRITE_DEADLINE_MS, unit: "ms" },
      note: `connector gone after ${hog.connectorMs.toFixed(0)} ms; the server logged: ${hog.serverLine.replace(/^\S+ /, "")}`,
    },
  ];
}
