import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, test } from "node:test";
import type { FixtureServer } from "../../test/support/http-server.js";
import {
  assertSameDisk,
  fixtureCatalog,
  type ImageFixture,
  serveImageFixture,
  writeJson,
} from "../../test/support/image-fixtures.js";
import { CastraError } from "../errors.js";
import { DownloadStore } from "./download-store.js";
import { type EnsureImageOptions, ensureImage } from "./ensure-image.js";
import type { ImageEvent } from "./events.js";
import { sha256File } from "./manifest.js";

const SPEC = { name: "alpine-minimal", version: "v1" };
let server: FixtureServer;
let fixtureDir: string;
let fixture: ImageFixture;
let catalogFile: string;
let root: string;
let store: DownloadStore;

before(async () => {
  ({ dir: fixtureDir, fixture, server } = await serveImageFixture("castra-store-fixture-"));
  const catalog = fixtureCatalog(fixture, server.origin);
  // Another image made of the same bytes: it shares every blob with alpine-minimal@v1.
  catalog.images.push(...fixtureCatalog(fixture, server.origin, "twin", "v1").images);
  catalogFile = writeJson(join(fixtureDir, "catalog.json"), catalog);
});
after(async () => {
  await server.close();
  await rm(fixtureDir, { recursive: true, force: true });
});
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "castra-store-session-"));
  store = new DownloadStore(join(root, "user-cache"));
  server.requests.length = 0;
});
afterEach(async () => {
  server.fault(`/${fixture.vhd.name}`, undefined);
  await rm(root, { recursive: true, force: true });
});

/** ensureImage in project `name` under this test's root, sharing this test's download cache. */
async function pull(name: string, options: Partial<EnsureImageOptions> = {}, spec = SPEC) {
  const events: ImageEvent[] = [];
  const image = await ensureImage(spec, {
    stateDir: join(root, name, ".castra"),
    env: { PATH: process.env.PATH, CASTRA_CATALOG: catalogFile, CASTRA_CACHE_DIR: store.root },
    onEvent: (e) => events.push(e),
    ...options,
  });
  const of = <T extends ImageEvent["type"]>(type: T) =>
    events.filter((e): e is Extract<ImageEvent, { type: T }> => e.type === type);
  return { image, events, of };
}

test("a second project is served from the download cache: no request, the same verified files", async () => {
  const first = await pull("a");
  assert.equal(first.of("store-add").length, 3);
  assert.equal(first.of("store-hit").length, 0);
  server.requests.length = 0;

  const second = await pull("b");
  assert.equal(server.requests.length, 0);
  assert.deepEqual(
    second.of("store-hit").map((e) => [e.artifact, e.bytes]),
    [
      ["root_disk", fixture.vhd.size],
      ["kernel", fixture.kernel.size],
      ["initrd", fixture.initrd.size],
    ],
  );
  assert.equal(second.of("download-start").length, 0);
  assertSameDisk(fixture.raw, second.image.files.root_disk as string);
  assert.equal(await sha256File(second.image.files.kernel as string), fixture.kernel.sha256);
  assert.equal((await stat(second.image.files.kernel as string)).mode & 0o777, 0o444);
  // Only the converted disk is the project's own; no download is left behind.
  assert.deepEqual((await readdir(second.image.dir)).sort(), [
    "initrd.img",
    "manifest.json",
    "rootfs.qcow2",
    "vmlinuz",
  ]);
  const record = JSON.parse(await readFile(store.recordPath(fixture.vhd.sha256), "utf8"));
  assert.ok(record.last_used_at >= record.fetched_at);
});

test("offline, an image the download cache holds is materialised without the network", async () => {
  await pull("a");
  server.requests.length = 0;
  const offline = await pull("b", { offline: true });
  assert.equal(offline.of("store-hit").length, 3);
  assert.equal(server.requests.length, 0);
});

test("a blob damaged in the store is reported, never used, re-downloaded and replaced", async () => {
  await pull("a");
  const blob = store.blobPath(fixture.kernel.sha256);
  await chmod(blob, 0o644);
  await writeFile(blob, Buffer.alloc(fixture.kernel.size, 0x55));
  server.requests.length = 0;

  const { image, of } = await pull("b");
  assert.deepEqual(
    of("store-damaged").map((e) => e.artifact),
    ["kernel"],
  );
  assert.match(of("store-damaged")[0]?.problem ?? "", /^its sha256 is [0-9a-f]{64}$/);
  assert.deepEqual(
    server.gets().map((r) => r.path),
    [`/${fixture.kernel.name}`],
  );
  assert.equal(await sha256File(image.files.kernel as string), fixture.kernel.sha256);
  assert.equal(await sha256File(blob), fixture.kernel.sha256);
});

test("an unusable store is one warning; the image is downloaded into the project as before", async () => {
  // A regular file where the store's directory should be: every write into the store fails (ENOTDIR).
  await writeFile(join(root, "user-cache"), "not a directory");
  const { image, of } = await pull("a");
  const warnings = of("store-unusable");
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]?.store, store.root);
  assert.match(warnings[0]?.reason ?? "", /ENOTDIR|EEXIST/);
  assert.equal(of("download-done").length, 3);
  assertSameDisk(fixture.raw, image.files.root_disk as string);
});

test("a store others may write is neither read nor written: one warning, every artifact downloaded", async () => {
  await pull("a");
  await chmod(store.blobsDir, 0o777);
  server.requests.length = 0;
  const { image, of } = await pull("b");
  assert.deepEqual(
    of("store-unusable").map((e) => e.reason),
    [
      `${store.blobsDir} is writable by its group and others (mode 0777); only a cache that you own and no one else may write is used`,
    ],
  );
  assert.equal(of("store-hit").length, 0);
  assert.equal(of("store-add").length, 0);
  assert.equal(server.gets().length, 3);
  assertSameDisk(fixture.raw, image.files.root_disk as string);
});

test("two images in one process sharing their bytes download each artifact once", async () => {
  server.fault(`/${fixture.vhd.name}`, { delayMs: 500 });
  const [a, b] = await Promise.all([pull("p"), pull("p", {}, { name: "twin", version: "v1" })]);
  for (const f of [fixture.vhd, fixture.kernel, fixture.initrd])
    assert.equal(server.gets(`/${f.name}`).length, 1, f.name);
  assert.equal(a.of("store-hit").length + b.of("store-hit").length, 3);
  assertSameDisk(fixture.raw, b.image.files.root_disk as string);
});

test("an interrupted download releases the blob's lock, so the next run is not kept waiting", async () => {
  server.fault(`/${fixture.vhd.name}`, { stallAfter: 500_000 });
  const controller = new AbortController();
  const err = await pull("a", {
    signal: controller.signal,
    onEvent: (e) => {
      if (e.type === "download-start") setTimeout(() => controller.abort(), 300);
    },
  }).then(
    () => assert.fail("expected an interruption"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CastraError && err.exitCode === 130, String(err));
  assert.equal(existsSync(store.lockPath(fixture.vhd.sha256)), false);
  assert.equal(existsSync(store.blobPath(fixture.vhd.sha256)), false);
  server.fault(`/${fixture.vhd.name}`, undefined);
  const resumed = await pull("a", { lockTimeoutMs: 1000 });
  assert.equal(resumed.of("store-add").length, 3);
});
