import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
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
import { catalogDigest, findEntry, loadCatalog } from "./catalog.js";
import { type EnsureImageOptions, ensureImage, imageDir, imageLockPath } from "./ensure-image.js";
import type { ImageEvent } from "./events.js";
import { type Manifest, sha256File } from "./manifest.js";

const SPEC = { name: "alpine-minimal", version: "v1" };
let server: FixtureServer;
let fixtureDir: string;
let fixture: ImageFixture;
let catalogFile: string;
let stateDir: string;

before(async () => {
  ({ dir: fixtureDir, fixture, server } = await serveImageFixture("castra-image-fixture-"));
  for (const f of [fixture.vhd, fixture.kernel, fixture.initrd])
    server.serve(`/mirror/${f.name}`, { file: f.path });
  catalogFile = writeJson(join(fixtureDir, "catalog.json"), fixtureCatalog(fixture, server.origin));
});
after(async () => {
  await server.close();
  await rm(fixtureDir, { recursive: true, force: true });
});
beforeEach(async () => {
  stateDir = join(await mkdtemp(join(tmpdir(), "castra-project-")), ".castra");
  server.requests.length = 0;
});
afterEach(async () => {
  for (const f of [fixture.vhd, fixture.kernel, fixture.initrd]) server.fault(`/${f.name}`, undefined);
  await rm(join(stateDir, ".."), { recursive: true, force: true });
});

const dir = () => imageDir(stateDir, SPEC.name, SPEC.version);

async function pull(options: Partial<EnsureImageOptions> = {}, env: NodeJS.ProcessEnv = {}) {
  const events: ImageEvent[] = [];
  const image = await ensureImage(SPEC, {
    stateDir,
    // The per-user download cache would answer later pulls; download-store tests cover it.
    env: { PATH: process.env.PATH, CASTRA_CATALOG: catalogFile, CASTRA_CACHE_DIR: "off", ...env },
    onEvent: (e) => events.push(e),
    ...options,
  });
  return { image, events, types: events.map((e) => e.type).filter((t) => t !== "progress") };
}

async function failure(promise: Promise<unknown>): Promise<CastraError> {
  const err = await promise.then(
    () => assert.fail("expected ensureImage to fail"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CastraError, String(err));
  return err;
}

const readManifest = async (): Promise<Manifest> =>
  JSON.parse(await readFile(join(dir(), "manifest.json"), "utf8"));

test("a fresh pull downloads, verifies, converts and records everything in the manifest", async () => {
  const { image, types } = await pull();
  assert.equal(image.cacheHit, false);
  assert.deepEqual(Object.keys(image.files).sort(), ["initrd", "kernel", "root_disk"]);
  const manifest = await readManifest();
  const catalog = await loadCatalog({ CASTRA_CATALOG: catalogFile });
  assert.equal(manifest.catalog_digest, catalogDigest(findEntry(catalog, SPEC.name, SPEC.version)));
  const disk = manifest.artifacts.find((a) => a.kind === "root_disk");
  assert.equal(disk?.source_sha256, fixture.vhd.sha256);
  assert.equal(disk?.final_sha256, await sha256File(join(dir(), "rootfs.qcow2")));
  assert.equal(manifest.artifacts.find((a) => a.kind === "kernel")?.final_sha256, fixture.kernel.sha256);
  // The qcow2 holds exactly the raw disk the VHD was made from.
  assertSameDisk(fixture.raw, image.files.root_disk as string);
  assert.deepEqual(await readFile(image.files.kernel as string), await readFile(fixture.kernel.path));
  assert.equal((await stat(image.files.root_disk as string)).mode & 0o777, 0o444);
  assert.deepEqual((await readdir(dir())).sort(), ["initrd.img", "manifest.json", "rootfs.qcow2", "vmlinuz"]);
  assert.deepEqual(types.slice(-6), [
    "download-done",
    "verified",
    "transform",
    "transform",
    "transform",
    "ready",
  ]);
  const log = await readFile(join(stateDir, "logs", "image-manager.log"), "utf8");
  assert.match(
    log,
    /^\d{4}-\d\d-\d\dT[\d:.]+Z alpine-minimal@v1 download-start artifact=root_disk url=http\S+ bytes=\d+ resume_from=0/m,
  );
  assert.match(log, /transform artifact=root_disk name=qemu_img_convert from=raw to=qcow2/);
  assert.match(log, /alpine-minimal@v1 ready /);
});

test("a second pull is a cache hit that makes no request", async () => {
  await pull();
  server.requests.length = 0;
  const { image, types } = await pull();
  assert.equal(image.cacheHit, true);
  assert.deepEqual(types, ["cache-hit", "ready"]);
  assert.equal(server.requests.length, 0);
});

test("a cache copied in by hand (new mtimes) is re-hashed once, kept, and its stamps refreshed", async () => {
  await pull();
  const copyState = join(await mkdtemp(join(tmpdir(), "castra-copy-")), ".castra");
  await cp(dir(), imageDir(copyState, SPEC.name, SPEC.version), {
    recursive: true,
    preserveTimestamps: false,
  });
  const future = Math.floor(Date.now() / 1000) + 60; // whole seconds: the stamp reads back exactly
  await utimes(join(imageDir(copyState, SPEC.name, SPEC.version), "rootfs.qcow2"), future, future);
  server.requests.length = 0;
  const events: ImageEvent[] = [];
  const copy = await ensureImage(SPEC, {
    stateDir: copyState,
    env: { CASTRA_CATALOG: catalogFile, PATH: process.env.PATH, CASTRA_CACHE_DIR: "off" },
    onEvent: (e) => events.push(e),
  });
  assert.equal(copy.cacheHit, true);
  assert.equal(server.requests.length, 0);
  const manifest: Manifest = JSON.parse(await readFile(join(copy.dir, "manifest.json"), "utf8"));
  assert.equal(manifest.artifacts.find((a) => a.kind === "root_disk")?.stamp.mtime_ms, future * 1000);
  await rm(join(copyState, ".."), { recursive: true, force: true });
});

test("a final file changed on disk is re-materialised alone", async () => {
  await pull();
  const kernel = join(dir(), "vmlinuz");
  await rm(kernel, { force: true });
  await writeFile(kernel, Buffer.alloc(fixture.kernel.size, 1));
  server.requests.length = 0;
  const { image, events } = await pull();
  assert.equal(image.cacheHit, false);
  const rebuild = events.find((e) => e.type === "rebuild");
  assert.match(rebuild && "reason" in rebuild ? rebuild.reason : "", /vmlinuz was modified/);
  assert.deepEqual(
    server.gets().map((r) => r.path),
    [`/${fixture.kernel.name}`],
  );
  assert.deepEqual(await readFile(kernel), await readFile(fixture.kernel.path));
});

test("a corrupt manifest leads to a rebuild, never a crash", async () => {
  await pull();
  await writeFile(join(dir(), "manifest.json"), "{ not json");
  const { image, events } = await pull();
  assert.equal(image.cacheHit, false);
  assert.ok(events.some((e) => e.type === "rebuild" && /manifest.json is unreadable/.test(e.reason)));
  assert.equal((await readManifest()).artifacts.length, 3);
});

test("a catalog entry whose profile changed rebuilds the manifest without downloading again", async () => {
  await pull();
  const changed = fixtureCatalog(fixture, server.origin);
  (changed.images[0] as { profile: { cpus: number } }).profile.cpus = 2;
  const other = writeJson(join(fixtureDir, "catalog-cpus.json"), changed);
  server.requests.length = 0;
  const { events } = await pull({}, { CASTRA_CATALOG: other });
  assert.ok(events.some((e) => e.type === "rebuild" && /catalog entry changed/.test(e.reason)));
  assert.equal(server.requests.length, 0);
  const entry = findEntry(await loadCatalog({ CASTRA_CATALOG: other }), SPEC.name, SPEC.version);
  assert.equal((await readManifest()).catalog_digest, catalogDigest(entry));
});

test("CASTRA_MIRROR fetches every artifact from the mirror with the same checksums", async () => {
  const { image } = await pull({}, { CASTRA_MIRROR: `${server.origin}/mirror/` });
  assert.equal(image.cacheHit, false);
  assert.ok(server.gets().every((r) => r.path.startsWith("/mirror/")));
  assert.equal(
    (await readManifest()).artifacts[0]?.fetched_from,
    `${server.origin}/mirror/${fixture.vhd.name}`,
  );
});

test("offline with an empty cache fails with 69 naming the missing files, without a request", async () => {
  const err = await failure(pull({ offline: true }));
  assert.equal(err.exitCode, 69);
  assert.match(err.detail ?? "", /rootfs\.qcow2 \(root disk/);
  assert.match(err.hint ?? "", /CASTRA_MIRROR/);
  assert.equal(server.requests.length, 0);
  await pull();
  server.requests.length = 0;
  assert.equal((await pull({ offline: true })).image.cacheHit, true);
  assert.equal(server.requests.length, 0);
});

test("without qemu-img on PATH the pull fails with 72 before any request", async () => {
  const emptyBin = await mkdtemp(join(tmpdir(), "castra-nobin-"));
  const err = await failure(pull({}, { PATH: emptyBin }));
  assert.equal(err.exitCode, 72);
  assert.match(err.detail ?? "", /apt-get install qemu-utils/);
  assert.match(err.detail ?? "", /dnf install qemu-img/);
  assert.match(err.detail ?? "", /brew install qemu/);
  assert.equal(server.requests.length, 0);
  await rm(emptyBin, { recursive: true });
});

test("a checksum mismatch fails with 65 and leaves no final file, no manifest and no .partial", async () => {
  const wrong = await readFile(fixture.kernel.path);
  wrong[100] = (wrong[100] ?? 0) ^ 1;
  server.fault(`/${fixture.kernel.name}`, { body: wrong });
  const err = await failure(pull());
  assert.equal(err.exitCode, 65);
  assert.match(err.headline, /Checksum mismatch/);
  // The root disk was verified before the kernel failed: its download stays for the next run.
  assert.deepEqual((await readdir(dir())).sort(), ["rootfs.qcow2.partial"]);
});

test("an interrupted pull keeps the .partial, exits 130, and the next pull resumes it", async () => {
  server.fault(`/${fixture.vhd.name}`, { stallAfter: 1_000_000 });
  const controller = new AbortController();
  const err = await failure(
    pull({
      signal: controller.signal,
      onEvent: (e) => {
        // The server sends 1 MB and falls silent; Ctrl-C comes while castra waits for more.
        if (e.type === "download-start") setTimeout(() => controller.abort(), 500);
      },
    }),
  );
  assert.equal(err.exitCode, 130);
  assert.equal((await stat(join(dir(), "rootfs.qcow2.partial"))).size, 1_000_000);
  assert.equal(existsSync(join(dir(), "manifest.json")), false);
  server.fault(`/${fixture.vhd.name}`, undefined);
  server.requests.length = 0;
  await pull();
  assert.equal(server.gets(`/${fixture.vhd.name}`)[0]?.range, "bytes=1000000-");
});

test("two pulls at once in one process download once and both succeed", async () => {
  const [a, b] = await Promise.all([pull(), pull()]);
  assert.deepEqual([a.image.cacheHit, b.image.cacheHit].sort(), [false, true]);
  assert.equal(server.gets(`/${fixture.vhd.name}`).length, 1);
});

test("a lock held by another live castra is waited for, then fails with 75 naming its pid", async () => {
  const holder = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    await mkdir(dir(), { recursive: true });
    const since = new Date().toISOString();
    await writeFile(imageLockPath(dir()), JSON.stringify({ pid: holder.pid, purpose: "test", since }));
    const events: ImageEvent[] = [];
    const err = await failure(pull({ lockTimeoutMs: 300, onEvent: (e) => events.push(e) }));
    assert.equal(err.exitCode, 75);
    assert.ok(err.headline.includes(String(holder.pid)));
    assert.deepEqual(events[0], { type: "lock-wait", image: "alpine-minimal@v1", pid: holder.pid });
    assert.equal(server.requests.length, 0);
  } finally {
    holder.kill();
  }
});
