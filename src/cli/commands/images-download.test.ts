import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { FixtureServer } from "../../../test/support/http-server.js";
import { castraInProcess, tempProject } from "../../../test/support/in-process.js";

/** A download interrupted or stalled, as the terminal shows it (a local server that goes silent mid-body). */
const DISK = randomBytes(4 * 1024 * 1024);
let dir: string;
let remove: () => Promise<void>;
let server: FixtureServer;
let env: NodeJS.ProcessEnv;

beforeEach(async () => {
  ({ dir, remove } = await tempProject(
    '[[vms]]\nname = "web"\nmanaged_image = { name = "slow", version = "v1" }\n',
  ));
  server = await FixtureServer.start();
  server.serve("/disk.raw", DISK);
  server.fault("/disk.raw", { stallAfter: 1024 * 1024 });
  const artifact = {
    kind: "root_disk",
    url: `${server.origin}/disk.raw`,
    sha256: createHash("sha256").update(DISK).digest("hex"),
    size: DISK.length,
    final_name: "rootfs.raw",
  };
  await writeFile(
    join(dir, "catalog.json"),
    JSON.stringify({ images: [{ id: "slow", version: "v1", artifacts: [artifact] }] }),
  );
  env = {
    CASTRA_CATALOG: join(dir, "catalog.json"),
    CASTRA_CACHE_DIR: "off",
    CASTRA_STALL_TIMEOUT: "30",
    PATH: process.env.PATH,
  };
});
afterEach(async () => {
  await server.close();
  await remove();
});

test("a stalled download shows `no data for N s` on the bar; Ctrl-C says what was kept and that it resumes", async () => {
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 5000);
  const run = await castraInProcess(["images", "pull"], {
    cwd: dir,
    env,
    isTTY: true,
    signal: controller.signal,
  });
  assert.equal(run.code, 130, run.stderr);
  // The bar kept moving after the burst: it shows every byte received, then the silence.
  assert.match(run.stderr, /1 MiB \/ 4 MiB {2}no data for [2-4] s/);
  assert.match(run.stderr, /^error: Download interrupted$/m);
  assert.match(run.stderr, /^ {2}kept 1 MiB of 4 MiB in .*rootfs\.raw\.partial$/m);
  assert.match(run.stderr, /^hint: run the same command again to resume the download$/m);
});
