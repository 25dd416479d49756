import assert from "node:assert/strict";
import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { METADATA_BOUNDS } from "../../src/metadata/bounds.js";
import { runCastra } from "../support/cli.js";
import { buildTestGuest, qemuSkip } from "../support/guest.js";
import { median, runMetadataLoad } from "../support/metadata-load.js";

// A guest under TCG times token+GET pairs against castra and a plain host server, floods 169.254.169.254 with
// connections, then asks for a 20 MiB user-data it never reads. The limits here are generous (a loaded CI
// host): they check the bounds hold; `npm run bench` judges the goals. Run `npm run build` first.
const skip = qemuSkip();
let dir: string | undefined;
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("under a real guest: answers as fast as the network allows, a flood is bounded, a hog is cut off", {
  skip,
  timeout: 600_000,
}, async () => {
  const guest = await buildTestGuest();
  dir = await realpath(await mkdtemp(join(tmpdir(), "castra-metadata-load-")));
  const project = dir;
  const result = await runMetadataLoad({
    castra: (args) => runCastra(args, { cwd: project, env: { CASTRA_ACCEL: "tcg" }, timeoutMs: 300_000 }),
    dir,
    biosDisk: guest.biosDisk,
    pairs: 30,
    flood: 300,
    holdSeconds: 5,
    hogBytes: 20 * 1024 * 1024,
    timeoutMs: 480_000,
  });
  const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
  console.log(
    `pairs: castra median ${median(result.meta)} ms (max ${Math.max(...result.meta)}), reference median ` +
      `${median(result.ref)} ms; flood: ${result.flood.opened} established at once, peak ${mb(result.flood.peakExtraPssBytes)} MB ` +
      `PSS over ${result.flood.peakConnectors} connectors, pair after ${result.flood.afterMs} ms; hog: connector gone after ` +
      `${result.hog.connectorMs.toFixed(0)} ms; server: ${result.hog.serverLine}`,
  );

  assert.equal(result.failed.meta, 0, "every pair against castra was answered");
  assert.equal(result.meta.length, 30);
  assert.ok(median(result.meta) < 1000, `median ${median(result.meta)} ms`);

  // Beyond the cap connections are closed at once: the guest never holds more than the cap open.
  assert.ok(result.flood.opened <= METADATA_BOUNDS.maxConnections, `opened ${result.flood.opened}`);
  assert.ok(result.flood.peakExtraPssBytes < 150e6, `peak ${mb(result.flood.peakExtraPssBytes)} MB`);
  assert.ok(result.flood.afterOk, "a pair after the flood is answered");
  assert.ok(result.flood.afterMs < 3000, `the pair after the flood took ${result.flood.afterMs} ms`);

  // The hog's connection is cut at the write deadline, and its connector is gone with it.
  assert.ok(result.hog.connectorMs < METADATA_BOUNDS.writeTimeoutMs + 2000, `${result.hog.connectorMs} ms`);
  assert.match(
    result.hog.serverLine,
    /GET \/latest\/user-data 200 20971520B \d+ms (cut short: the connection closed|refused: answer not taken)/,
  );
  assert.ok(result.hog.serverMs <= METADATA_BOUNDS.writeTimeoutMs + 2000, `server ${result.hog.serverMs} ms`);
});
