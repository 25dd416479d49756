import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, test } from "node:test";
import { formatBytes } from "../../src/host/bytes.js";
import { CASTRA_BIN, type CliResult, runCastra } from "../support/cli.js";
import type { FixtureServer } from "../support/http-server.js";
import {
  assertSameDisk,
  fixtureCatalog,
  type ImageFixture,
  serveImageFixture,
  writeJson,
} from "../support/image-fixtures.js";

let server: FixtureServer;
let fixtureDir: string;
let fixture: ImageFixture;
let catalogFile: string;
/** This test's scratch directory: the shared store and the projects live under it. */
let root: string;
let store: string;

const IMAGE_DIR = join(".castra", "images", "alpine-minimal", "v1");
const blobsDir = () => join(store, "downloads", "sha256");
const vhdPath = () => `/${fixture.vhd.name}`;

before(async () => {
  ({ dir: fixtureDir, fixture, server } = await serveImageFixture("castra-e2e-store-fixture-"));
  catalogFile = writeJson(join(fixtureDir, "catalog.json"), fixtureCatalog(fixture, server.origin));
});
after(async () => {
  await server.close();
  await rm(fixtureDir, { recursive: true, force: true });
});
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "castra-e2e-store-"));
  store = join(root, "user-cache");
  server.requests.length = 0;
});
afterEach(async () => {
  server.fault(vhdPath(), undefined);
  await rm(root, { recursive: true, force: true });
});

/** A fresh project directory under this test's root. */
async function project(name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** `castra images ...` in `cwd`, with the fixture catalog and this test's download cache. */
function castra(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCastra(["images", ...args], {
    cwd,
    env: { CASTRA_CATALOG: catalogFile, CASTRA_CACHE_DIR: store, ...env },
  });
}

function assertExit(result: CliResult, code: number): void {
  assert.equal(
    result.code,
    code,
    `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
  );
}

async function sha256Of(path: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
}

/** Every file in the store's blob directory with its size. */
async function storeFiles(): Promise<Map<string, number>> {
  const names = await readdir(blobsDir()).catch(() => []);
  const sizes = await Promise.all(
    names.map(async (n) => [n, (await stat(join(blobsDir(), n))).size] as const),
  );
  return new Map(sizes);
}

test("a second project takes the image from the download cache without one request", async () => {
  const first = await project("first");
  const pulled = await castra(first, ["pull"]);
  assertExit(pulled, 0);
  assert.match(pulled.stderr, /Downloading root disk/);
  assert.equal(server.gets().length, 3);

  // The store: private directories, read-only blobs named by their sha256, a record beside each.
  assert.equal((await stat(store)).mode & 0o777, 0o700);
  assert.equal((await stat(blobsDir())).mode & 0o777, 0o700);
  const blob = join(blobsDir(), fixture.vhd.sha256);
  assert.equal((await stat(blob)).mode & 0o777, 0o444);
  assert.equal(await sha256Of(blob), fixture.vhd.sha256);
  const record = JSON.parse(await readFile(`${blob}.json`, "utf8"));
  assert.equal(record.url, server.url(vhdPath()));
  assert.equal(record.size, fixture.vhd.size);
  assert.ok(Date.parse(record.fetched_at) > 0 && Date.parse(record.last_used_at) > 0);

  server.requests.length = 0;
  const second = await project("second");
  const cached = await castra(second, ["pull"]);
  assertExit(cached, 0);
  assert.equal(server.requests.length, 0, "the second project made HTTP requests");
  assert.match(cached.stderr, /^Found in the download cache: root disk \(4\.0 MiB\)$/m);
  assert.match(cached.stderr, /^Found in the download cache: kernel /m);
  assert.doesNotMatch(cached.stderr, /Downloading/);
  assert.match(cached.stderr, /alpine-minimal@v1 ready in /);
  const disk = (dir: string) => join(dir, IMAGE_DIR, "rootfs.qcow2");
  assert.equal(await sha256Of(disk(second)), await sha256Of(disk(first)));
  assertSameDisk(fixture.raw, disk(second));
  // The transforms ran on the second project's own copy: the blob is still the verified download.
  assert.equal(await sha256Of(blob), fixture.vhd.sha256);
  assert.match(
    await readFile(join(second, ".castra", "logs", "image-manager.log"), "utf8"),
    /alpine-minimal@v1 store-hit artifact=root_disk/,
  );
  assertExit(await castra(second, ["verify"]), 0);
  assertExit(await castra(second, ["verify", "--cache"]), 0);
});

test("CASTRA_CACHE_DIR=off: both projects download, and no store is created", async () => {
  for (const name of ["one", "two"]) {
    const result = await castra(await project(name), ["pull"], { CASTRA_CACHE_DIR: "off" });
    assertExit(result, 0);
    assert.doesNotMatch(result.stderr, /download cache/);
  }
  assert.equal(server.gets(vhdPath()).length, 2);
  assert.equal(existsSync(store), false);
  const list = await castra(root, ["list", "--cache"], { CASTRA_CACHE_DIR: "off" });
  assertExit(list, 0);
  assert.match(list.stderr, /The download cache is off/);
});

test("a blob tampered in the store is named by verify --cache, never used, and replaced by a good one", async () => {
  assertExit(await castra(await project("first"), ["pull"]), 0);
  const blob = join(blobsDir(), fixture.vhd.sha256);
  await chmod(blob, 0o644);
  const bytes = await readFile(blob);
  bytes[4096] = (bytes[4096] ?? 0) ^ 0xff; // same size, different bytes
  await writeFile(blob, bytes);
  await chmod(blob, 0o444);

  const verify = await castra(root, ["verify", "--cache"]);
  assertExit(verify, 65);
  assert.ok(verify.stdout.includes(`DAMAGED  ${blob}: its content hashes to `), verify.stdout);
  assert.match(verify.stdout, new RegExp(`^ok +${blobsDir()}/${fixture.kernel.sha256}$`, "m"));
  assert.ok(verify.stderr.includes(`error: ${blob} is damaged`), verify.stderr);
  assert.match(verify.stderr, /hint: remove them \(rm -f /);

  server.requests.length = 0;
  const second = await project("second");
  const pulled = await castra(second, ["pull"]);
  assertExit(pulled, 0);
  assert.match(
    pulled.stderr,
    /warning: the download cache's copy of the root disk is damaged \(its sha256 is /,
  );
  assert.match(pulled.stderr, /Downloading root disk/);
  assert.equal(server.gets(vhdPath()).length, 1);
  assert.equal(server.gets().length, 1, "the kernel and initrd still came from the cache");
  assertSameDisk(fixture.raw, join(second, IMAGE_DIR, "rootfs.qcow2"));
  assert.equal(await sha256Of(blob), fixture.vhd.sha256, "the damaged blob was not replaced");
  assertExit(await castra(root, ["verify", "--cache"]), 0);
});

test("two projects pulling at once download each artifact once, and both succeed", async () => {
  server.fault(vhdPath(), { delayMs: 1500 });
  const [a, b] = await Promise.all([
    castra(await project("a"), ["pull"]),
    castra(await project("b"), ["pull"]),
  ]);
  assertExit(a, 0);
  assertExit(b, 0);
  for (const f of [fixture.vhd, fixture.kernel, fixture.initrd]) {
    assert.equal(server.gets(`/${f.name}`).length, 1, `GETs of ${f.name}`);
  }
  const waited = [a, b].find((r) =>
    /Waiting for another castra \(pid \d+\) that is downloading the same root disk/.test(r.stderr),
  );
  assert.ok(waited, `neither run waited:\n${a.stderr}\n---\n${b.stderr}`);
  assert.match(waited.stderr, /Found in the download cache: root disk/);
  for (const dir of ["a", "b"]) assertSameDisk(fixture.raw, join(root, dir, IMAGE_DIR, "rootfs.qcow2"));
  const left = [...(await storeFiles()).keys()].filter((n) => n.endsWith(".lock") || n.endsWith(".tmp"));
  assert.deepEqual(left, []);
});

test("list --cache shows each blob's size, last use, catalog image and URL", async () => {
  const empty = await castra(root, ["list", "--cache"]);
  assertExit(empty, 0);
  assert.match(empty.stderr, /The download cache .* is empty/);
  assertExit(await castra(await project("p"), ["pull"]), 0);
  const list = await castra(root, ["list", "--cache"]);
  assertExit(list, 0);
  assert.match(list.stdout, /^SHA256 +SIZE +LAST USED +CATALOG +URL$/m);
  const row = new RegExp(
    `^${fixture.vhd.sha256.slice(0, 12)} +4\\.0 MiB +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d +alpine-minimal@v1 root disk +${server.url(vhdPath())}$`,
    "m",
  );
  assert.match(list.stdout, row);
  assert.match(list.stdout, /^Total: 4\.5 MiB in 3 blobs \(/m);
});

test("prune --cache frees exactly what it says: blobs no catalog entry uses, then blobs unused too long", async () => {
  assertExit(await castra(await project("p"), ["pull"]), 0);
  await rm(join(root, "p"), { recursive: true }); // the project's hard links would keep the bytes on disk
  // A catalog that no longer has the kernel and initrd: their blobs are unused.
  const diskOnly = fixtureCatalog(fixture, server.origin);
  const entry = diskOnly.images[0] as { artifacts: unknown[]; profile: Record<string, unknown> };
  entry.artifacts = entry.artifacts.slice(0, 1);
  entry.profile = { cpus: 1, memory: "256 MiB" };
  const newer = writeJson(join(root, "disk-only.json"), diskOnly);

  const refused = await castra(root, ["prune", "--cache"], { CASTRA_CATALOG: newer });
  assertExit(refused, 64);
  assert.match(refused.stderr, new RegExp(`unused: ${fixture.kernel.sha256.slice(0, 12)} 293\\.0 KiB `));
  assert.match(refused.stderr, /hint: run `castra images prune --cache --yes`/);

  const before = await storeFiles();
  const pruned = await castra(root, ["prune", "--cache", "--yes"], { CASTRA_CATALOG: newer });
  assertExit(pruned, 0);
  const afterPrune = await storeFiles();
  const removed = [...before].filter(([name]) => !afterPrune.has(name));
  const removedBytes = removed.reduce((sum, [, size]) => sum + size, 0);
  assert.deepEqual(
    removed.map(([n]) => n.slice(0, 64)).sort(),
    [fixture.initrd.sha256, fixture.initrd.sha256, fixture.kernel.sha256, fixture.kernel.sha256].sort(),
  );
  assert.ok(pruned.stderr.includes(`Freed ${formatBytes(removedBytes)} (2 blobs)`), pruned.stderr);
  assert.ok(afterPrune.has(fixture.vhd.sha256));

  // Used 40 days ago: --older-than 30 removes it even though the catalog still has it.
  const recordPath = join(blobsDir(), `${fixture.vhd.sha256}.json`);
  const record = JSON.parse(await readFile(recordPath, "utf8"));
  record.last_used_at = new Date(Date.now() - 40 * 86_400_000).toISOString();
  await writeFile(recordPath, JSON.stringify(record));
  assert.match(
    (await castra(root, ["prune", "--cache", "--yes"], { CASTRA_CATALOG: newer })).stderr,
    /Nothing to prune/,
  );
  const old = await castra(root, ["prune", "--cache", "--older-than", "30", "--yes"], {
    CASTRA_CATALOG: newer,
  });
  assertExit(old, 0);
  assert.match(old.stderr, /unused for 40 days/);
  const diskBytes = fixture.vhd.size + (await storeFilesSize(before, `${fixture.vhd.sha256}.json`));
  assert.ok(old.stderr.includes(`Freed ${formatBytes(diskBytes)} (1 blob)`), old.stderr);
  assert.deepEqual([...(await storeFiles()).keys()], []);
});

/** The size a file had in an earlier listing. */
async function storeFilesSize(listing: Map<string, number>, name: string): Promise<number> {
  return listing.get(name) ?? 0;
}

/** Whether this host lets us mount in a private namespace (root, or CAP_SYS_ADMIN). */
function canMount(): boolean {
  const probe = spawnSync("unshare", ["-m", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$0"', root]);
  return probe.status === 0;
}

/**
 * Runs `script` with sh in a private mount namespace, cwd `root`; `$CASTRA` runs the CLI. Asynchronous: the
 * fixture server runs in this process and must keep answering.
 */
function inNamespace(script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn("unshare", ["-m", "sh", "-c", `set -e\n${script}`], {
    cwd: root,
    env: {
      ...process.env,
      NO_COLOR: "1",
      FORCE_COLOR: "",
      CASTRA: `${process.execPath} ${CASTRA_BIN}`,
      CASTRA_CATALOG: catalogFile,
      CASTRA_CACHE_DIR: store,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

test("a read-only store is a warning: an empty one means a normal download, a filled one still serves", async (t) => {
  if (!canMount()) return t.skip("cannot mount in a private namespace here (needs root)");
  await mkdir(store);
  const readOnly =
    'mount --bind "$CASTRA_CACHE_DIR" "$CASTRA_CACHE_DIR"; mount -o remount,bind,ro "$CASTRA_CACHE_DIR"';
  await project("p1");
  const empty = await inNamespace(`${readOnly}\ncd p1 && $CASTRA images pull`);
  assert.equal(empty.code, 0, empty.stderr);
  assert.match(
    empty.stderr,
    /warning: the download cache .*user-cache is not usable \(EROFS: read-only file system/,
  );
  assert.match(empty.stderr, /Downloading root disk/);
  assertSameDisk(fixture.raw, join(root, "p1", IMAGE_DIR, "rootfs.qcow2"));
  assert.deepEqual(await readdir(store), []);

  assertExit(await castra(await project("p2"), ["pull"]), 0); // fills the store
  server.requests.length = 0;
  await project("p3");
  const filled = await inNamespace(`${readOnly}\ncd p3 && $CASTRA images pull`);
  assert.equal(filled.code, 0, filled.stderr);
  assert.match(filled.stderr, /warning: the download cache .* is not usable \(EROFS/);
  assert.match(filled.stderr, /Found in the download cache: root disk/);
  assert.equal(server.requests.length, 0);
  assertSameDisk(fixture.raw, join(root, "p3", IMAGE_DIR, "rootfs.qcow2"));
});

test("a store on another filesystem is copied across; a full one is a warning and a normal download", async (t) => {
  if (!canMount()) return t.skip("cannot mount in a private namespace here (needs root)");
  await mkdir(store);
  await project("p1");
  await project("p2");
  // tmpfs: hard links from the project's ext4 fail with EXDEV, so blobs are copied both ways. It is mounted
  // private (a tmpfs is 1777 by default): castra uses no cache that others may write.
  const other = await inNamespace(
    'mount -t tmpfs -o size=20m,mode=0700 tmpfs "$CASTRA_CACHE_DIR"\n' +
      "(cd p1 && $CASTRA images pull)\n(cd p2 && $CASTRA images pull 2>&1 >/dev/null | sed 's/^/p2: /' >&2)",
  );
  assert.equal(other.code, 0, other.stderr);
  assert.doesNotMatch(other.stderr, /warning/);
  assert.match(other.stderr, /^p2: Found in the download cache: root disk/m);
  assert.equal(server.gets(vhdPath()).length, 1);
  assertSameDisk(fixture.raw, join(root, "p2", IMAGE_DIR, "rootfs.qcow2"));

  await project("p3");
  const full = await inNamespace(
    `mount -t tmpfs -o size=1m,mode=0700 tmpfs "$CASTRA_CACHE_DIR"\ncd p3 && $CASTRA images pull\nls -A "$CASTRA_CACHE_DIR/downloads/sha256"`,
  );
  assert.equal(full.code, 0, full.stderr);
  assert.match(full.stderr, /warning: the download cache .* is not usable \(ENOSPC: no space left on device/);
  assertSameDisk(fixture.raw, join(root, "p3", IMAGE_DIR, "rootfs.qcow2"));
  assert.doesNotMatch(full.stdout, /\.tmp/, "a failed publish left a temporary file");
});

test("on a filesystem with reflinks, projects get reflinked copies and the blob stays intact", async (t) => {
  if (!canMount()) return t.skip("cannot mount in a private namespace here (needs root)");
  if (spawnSync("mkfs.xfs", ["-V"]).status !== 0)
    return t.skip("mkfs.xfs is not installed (apt-get install xfsprogs)");
  const image = join(root, "xfs.img");
  await writeFile(image, "");
  spawnSync("truncate", ["-s", "400M", image]);
  const mkfs = spawnSync("mkfs.xfs", ["-q", "-m", "reflink=1", image]);
  assert.equal(mkfs.status, 0, String(mkfs.stderr));
  const disk = "$M/p2/.castra/images/alpine-minimal/v1/rootfs.qcow2";
  const result = await inNamespace(
    [
      'M="$PWD/xfs"; mkdir "$M"; mount -o loop xfs.img "$M"; export CASTRA_CACHE_DIR="$M/store"',
      "trap 'umount \"$M\"' EXIT",
      'mkdir "$M/p1" "$M/p2"',
      '(cd "$M/p1" && $CASTRA images pull 2>/dev/null)',
      `(cd "$M/p2" && $CASTRA images pull)`,
      `echo "blob $(sha256sum < "$CASTRA_CACHE_DIR/downloads/sha256/${fixture.vhd.sha256}" | cut -d' ' -f1) links $(stat -c %h "$CASTRA_CACHE_DIR/downloads/sha256/${fixture.kernel.sha256}")"`,
      `qemu-img compare -q -f raw -F qcow2 "${fixture.raw}" "${disk}" && echo "disk same"`,
      'grep -o "store-hit artifact=[a-z_]* .*placement=[a-z]*" "$M/p2/.castra/logs/image-manager.log" | sed "s/ path=.* bytes=[0-9]*//"',
    ].join("\n"),
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /Found in the download cache: root disk/);
  assert.equal(server.gets(vhdPath()).length, 1);
  assert.match(result.stdout, new RegExp(`^blob ${fixture.vhd.sha256} links 1$`, "m"));
  assert.match(result.stdout, /^disk same$/m);
  for (const kind of ["root_disk", "kernel", "initrd"])
    assert.match(result.stdout, new RegExp(`^store-hit artifact=${kind} placement=reflink$`, "m"));
});
