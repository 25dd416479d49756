import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  chmod,
  chown,
  link,
  lstat,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { buildImageFixture } from "../../test/support/image-fixtures.js";
import type { Catalog } from "./catalog.js";
import type { CatalogEntry } from "./catalog-schema.js";
import { stripVhdFooter } from "./disk-conversion.js";
import { DownloadStore, downloadStoreRoot, type StoredBlob } from "./download-store.js";
import { unshareFile } from "./file-placement.js";
import { blobProblem, pruneCandidates } from "./store-inventory.js";

let root: string;
let store: DownloadStore;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "castra-store-"));
  store = new DownloadStore(join(root, "cache"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/** A verified download in a project directory, as `download()` leaves it. */
async function download(name: string, data: Buffer): Promise<string> {
  const path = join(root, name);
  await writeFile(path, data);
  return path;
}

test("the store lives in CASTRA_CACHE_DIR, else XDG_CACHE_HOME/castra, else the platform's user cache", () => {
  assert.equal(downloadStoreRoot({ CASTRA_CACHE_DIR: "/srv/c", XDG_CACHE_HOME: "/x" }), "/srv/c");
  assert.equal(downloadStoreRoot({ CASTRA_CACHE_DIR: "off", XDG_CACHE_HOME: "/x" }), undefined);
  assert.equal(downloadStoreRoot({ XDG_CACHE_HOME: "/x", HOME: "/home/u" }), "/x/castra");
  // A relative XDG_CACHE_HOME is invalid per the XDG spec: ignored.
  assert.equal(
    downloadStoreRoot({ XDG_CACHE_HOME: "rel", HOME: "/home/u" }, "linux"),
    "/home/u/.cache/castra",
  );
  assert.equal(downloadStoreRoot({ HOME: "/Users/u" }, "darwin"), "/Users/u/Library/Caches/castra");
  assert.equal(
    downloadStoreRoot({ CASTRA_CACHE_DIR: "", HOME: "/home/u" }, "linux"),
    "/home/u/.cache/castra",
  );
});

test("publish adds a read-only blob in private directories, with its record, and leaves no temporary", async () => {
  const data = Buffer.from("the verified bytes of an artifact");
  const source = await download("disk.vhd.partial", data);
  const hash = sha256(data);
  await store.publish(source, hash, data.length, "https://example.org/disk.vhd");

  const blob = store.blobPath(hash);
  assert.deepEqual(await readFile(blob), data);
  assert.equal((await stat(blob)).mode & 0o777, 0o444);
  for (const dir of [store.root, join(store.root, "downloads"), store.blobsDir])
    assert.equal((await stat(dir)).mode & 0o777, 0o700, dir);
  const record = JSON.parse(await readFile(store.recordPath(hash), "utf8"));
  assert.equal(record.url, "https://example.org/disk.vhd");
  assert.equal(record.size, data.length);
  assert.equal(record.fetched_at, record.last_used_at);
  assert.deepEqual((await readdir(store.blobsDir)).sort(), [hash, `${hash}.json`]);
  assert.deepEqual(await store.leftovers(), []);
  const [listed] = await store.list();
  assert.equal(listed?.sha256, hash);
  assert.equal(await blobProblem(listed as StoredBlob), undefined);
});

test("only a store the user owns and no one else may write is trusted", async (t) => {
  assert.equal(await store.trustProblem(), undefined, "a store that does not exist yet");
  await store.create();
  assert.equal(await store.trustProblem(), undefined);
  await chmod(store.root, 0o770);
  assert.equal(await store.trustProblem(), `${store.root} is writable by its group (mode 0770)`);
  await chmod(store.root, 0o700);
  await chmod(store.blobsDir, 0o703);
  assert.equal(await store.trustProblem(), `${store.blobsDir} is writable by others (mode 0703)`);
  await chmod(store.blobsDir, 0o700);
  await rm(store.blobsDir, { recursive: true });
  await symlink(root, store.blobsDir);
  assert.equal(await store.trustProblem(), `${store.blobsDir} is not a directory`);
  if (process.getuid?.() !== 0) return t.skip("changing a directory's owner needs root");
  await rm(store.blobsDir);
  await store.create();
  await chown(join(store.root, "downloads"), 65534, 65534);
  assert.equal(
    await store.trustProblem(),
    `${join(store.root, "downloads")} is owned by uid 65534, not by you (uid 0)`,
  );
});

test("a record's temporary file is created anew: a link planted at its name is never written through", async () => {
  const data = Buffer.from("bytes");
  const hash = sha256(data);
  await store.create();
  const victim = await download("victim", Buffer.from("precious"));
  await symlink(victim, `${store.recordPath(hash)}.tmp`);
  await store.publish(await download("a.partial", data), hash, data.length, "u");
  assert.equal(await readFile(victim, "utf8"), "precious");
  assert.ok((await lstat(store.recordPath(hash))).isFile());
  assert.equal(JSON.parse(await readFile(store.recordPath(hash), "utf8")).sha256, hash);
});

test("a blob others may write is copied into a project, never hard-linked", async () => {
  const data = Buffer.from("shared bytes");
  const hash = sha256(data);
  await store.publish(await download("a.partial", data), hash, data.length, "u");
  await rm(join(root, "a.partial"));
  const own = (await store.find(hash)) as StoredBlob;
  assert.equal(own.linkable, true);
  await chmod(store.blobPath(hash), 0o666);
  const loose = (await store.find(hash)) as StoredBlob;
  assert.equal(loose.linkable, false);
  const dest = join(root, "project-vmlinuz");
  assert.notEqual(await store.placeInto(loose, dest), "hardlink");
  assert.notEqual((await stat(dest)).ino, (await stat(store.blobPath(hash))).ino);
  assert.deepEqual(await readFile(dest), data);
});

test("a damaged blob is named by blobProblem and replaced by the next publish", async () => {
  const data = Buffer.from("good bytes");
  const hash = sha256(data);
  await store.publish(await download("a.partial", data), hash, data.length, "u");
  const blob = store.blobPath(hash);
  await chmod(blob, 0o644);
  await writeFile(blob, Buffer.from("bad! bytes"));
  const damaged = (await store.find(hash)) as StoredBlob;
  assert.match((await blobProblem(damaged)) ?? "", /^its content hashes to [0-9a-f]{64} \(10 bytes\)$/);

  await store.publish(await download("b.partial", data), hash, data.length, "u");
  assert.deepEqual(await readFile(blob), data);
});

test("stripping the footer of a hard link to a blob truncates a copy of its own, never the blob", async () => {
  const fixture = buildImageFixture(root, 1);
  const data = await readFile(fixture.vhd.path);
  const hash = fixture.vhd.sha256;
  await store.publish(fixture.vhd.path, hash, data.length, "u");
  const placed = join(root, "project-rootfs.qcow2.partial");
  await link(store.blobPath(hash), placed); // what placeInto does where reflinks are not supported

  await stripVhdFooter(placed);
  assert.equal((await stat(placed)).size, data.length - 512);
  assert.deepEqual(await readFile(placed), await readFile(fixture.raw));
  assert.equal(sha256(await readFile(store.blobPath(hash))), hash, "the blob was modified");
  assert.equal((await stat(store.blobPath(hash))).size, data.length);
});

test("unshareFile copies only a file that other names share", async () => {
  const alone = await download("alone", Buffer.from("x"));
  const before = (await stat(alone)).ino;
  assert.equal(await unshareFile(alone), false);
  assert.equal((await stat(alone)).ino, before);

  const other = join(root, "other");
  await link(alone, other);
  assert.equal(await unshareFile(alone), true);
  assert.notEqual((await stat(alone)).ino, (await stat(other)).ino);
  assert.equal((await stat(other)).nlink, 1);
  assert.equal((await readFile(alone)).toString(), "x");
});

test("remove reports the bytes it frees, and none for a blob a project still hard-links", async () => {
  const data = Buffer.alloc(10_000, 7);
  const hash = sha256(data);
  await store.publish(await download("k.partial", data), hash, data.length, "u");
  const recordBytes = (await stat(store.recordPath(hash))).size;
  // publish may have hard-linked the project's file: drop it so the blob is alone
  await rm(join(root, "k.partial"));
  assert.deepEqual(await store.remove(hash), { freed: data.length + recordBytes, shared: false });
  assert.deepEqual(await store.list(), []);

  await store.publish(await download("l.partial", data), hash, data.length, "u");
  await rm(join(root, "l.partial"));
  await link(store.blobPath(hash), join(root, "project-vmlinuz"));
  assert.deepEqual(await store.remove(hash), { freed: recordBytes, shared: true });
  assert.deepEqual(await readFile(join(root, "project-vmlinuz")), data);
});

test("leftovers are crashed publishes and records without a blob", async () => {
  await store.create();
  const hash = "a".repeat(64);
  await writeFile(join(store.blobsDir, `${hash}.tmp`), Buffer.alloc(100));
  await writeFile(join(store.blobsDir, `${"b".repeat(64)}.json`), "{}");
  const found = (await store.leftovers()).map((l) => [l.path.slice(store.blobsDir.length + 1), l.size]);
  assert.deepEqual(found, [
    [`${hash}.tmp`, 100],
    [`${"b".repeat(64)}.json`, 2],
  ]);
  assert.equal(await store.removeLeftover(join(store.blobsDir, `${hash}.tmp`)), 100);
  assert.deepEqual(await store.list(), []);
});

test("prune candidates: blobs no catalog entry names, and with a limit, blobs unused for longer", () => {
  const now = new Date("2025-06-30T12:00:00Z");
  const blob = (sha: string, lastUsed: string): StoredBlob => ({
    sha256: sha,
    path: `/store/${sha}`,
    size: 1,
    links: 1,
    linkable: true,
    modified: new Date("2025-01-01T00:00:00Z"),
    record: { format: 1, sha256: sha, size: 1, url: "u", fetched_at: lastUsed, last_used_at: lastUsed },
  });
  const inCatalog = "1".repeat(64);
  const gone = "2".repeat(64);
  const catalog: Catalog = {
    entries: [
      {
        id: "img",
        version: "v1",
        profile: {},
        artifacts: [
          { kind: "kernel", url: "u", sha256: inCatalog, size: 1, final_name: "k", transforms: [] },
        ],
      } satisfies CatalogEntry,
    ],
  };
  const blobs = [blob(inCatalog, "2025-05-01T00:00:00Z"), blob(gone, "2025-06-30T00:00:00Z")];
  const names = (days?: number) =>
    pruneCandidates(blobs, catalog, days, now).map((c) => [c.blob.sha256[0], c.why]);
  assert.deepEqual(names(), [["2", "no catalog entry uses it"]]);
  assert.deepEqual(names(30), [
    ["1", "unused for 60 days"],
    ["2", "no catalog entry uses it"],
  ]);
  assert.deepEqual(names(90), [["2", "no catalog entry uses it"]]);
});
