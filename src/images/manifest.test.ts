import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { seededBytes } from "../../test/support/image-fixtures.js";
import { catalogDigest } from "./catalog.js";
import type { CatalogEntry } from "./catalog-schema.js";
import { type Manifest, readManifest, reconcile, stampOf, writeManifest } from "./manifest.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "castra-manifest-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const DISK = seededBytes(100_000, 1);
const KERNEL = seededBytes(30_000, 2);
const STAMP_SECONDS = 1_700_000_000;
const sha = (data: Buffer) => createHash("sha256").update(data).digest("hex");

const ENTRY: CatalogEntry = {
  id: "tiny",
  version: "v1",
  artifacts: [
    {
      kind: "root_disk",
      url: "http://x/disk",
      sha256: sha(DISK),
      size: DISK.length,
      final_name: "disk.img",
      transforms: [],
    },
    {
      kind: "kernel",
      url: "http://x/k",
      sha256: sha(KERNEL),
      size: KERNEL.length,
      final_name: "vmlinuz",
      transforms: [],
    },
  ],
  profile: { cpus: 1 },
};

/** A materialised image as the pipeline leaves it: final files plus a manifest with their stamps. */
async function materialised(entry = ENTRY): Promise<Manifest> {
  await writeFile(join(dir, "disk.img"), DISK);
  await writeFile(join(dir, "vmlinuz"), KERNEL);
  // Whole seconds, so tests can put a stamp back exactly.
  for (const name of ["disk.img", "vmlinuz"]) await utimes(join(dir, name), STAMP_SECONDS, STAMP_SECONDS);
  const now = new Date().toISOString();
  const manifest: Manifest = {
    format: 1,
    image: entry.id,
    version: entry.version,
    catalog_digest: catalogDigest(entry),
    created_at: now,
    updated_at: now,
    artifacts: await Promise.all(
      entry.artifacts.map(async (a) => {
        const stamp = await stampOf(join(dir, a.final_name));
        return {
          kind: a.kind,
          url: a.url,
          fetched_from: a.url,
          source_sha256: a.sha256,
          source_size: a.size,
          final_name: a.final_name,
          final_sha256: a.sha256,
          final_size: a.size,
          stamp,
          transforms: a.transforms,
          materialised_at: now,
        };
      }),
    ),
  };
  await writeManifest(dir, manifest);
  return manifest;
}

test("the manifest is written atomically and reads back the same", async () => {
  const manifest = await materialised();
  assert.deepEqual(await readManifest(dir), { kind: "ok", manifest });
  assert.deepEqual((await readdir(dir)).sort(), ["disk.img", "manifest.json", "vmlinuz"]);
});

test("a missing, unparsable or malformed manifest is reported, not thrown", async () => {
  assert.deepEqual(await readManifest(dir), { kind: "missing" });
  await writeFile(join(dir, "manifest.json"), "{");
  assert.deepEqual(await readManifest(dir), { kind: "corrupt", reason: "not valid JSON" });
  await writeFile(join(dir, "manifest.json"), JSON.stringify({ format: 1, image: "tiny" }));
  const read = await readManifest(dir);
  assert.equal(read.kind, "corrupt");
  const digest = catalogDigest(ENTRY);
  const state = await reconcile(dir, ENTRY, digest);
  assert.equal(state.hit, false);
  assert.match(state.reason ?? "", /manifest\.json is unreadable/);
});

test("matching stamps are a hit without reading the files", async () => {
  await materialised();
  // Same size, same mtime, other bytes: only a full re-hash (castra images verify) would notice.
  const path = join(dir, "disk.img");
  await writeFile(path, seededBytes(DISK.length, 99));
  await utimes(path, STAMP_SECONDS, STAMP_SECONDS);
  const state = await reconcile(dir, ENTRY, catalogDigest(ENTRY));
  assert.equal(state.hit, true);
  assert.equal(state.refreshed, false);
});

test("a changed stamp with the same content is re-hashed once: a hit with a refreshed stamp", async () => {
  const manifest = await materialised();
  const later = STAMP_SECONDS + 60;
  await utimes(join(dir, "vmlinuz"), later, later);
  const state = await reconcile(dir, ENTRY, catalogDigest(ENTRY));
  assert.equal(state.hit, true);
  assert.equal(state.refreshed, true);
  assert.equal(state.intact.get("kernel")?.stamp.mtime_ms, later * 1000);
  assert.deepEqual(state.intact.get("root_disk"), manifest.artifacts[0]);
});

test("a changed file, a missing file or another size is rebuilt, the rest kept", async () => {
  await materialised();
  await writeFile(join(dir, "vmlinuz"), seededBytes(KERNEL.length, 77));
  let state = await reconcile(dir, ENTRY, catalogDigest(ENTRY));
  assert.equal(state.hit, false);
  assert.equal(state.reason, "vmlinuz was modified (sha256 differs from the manifest)");
  assert.deepEqual([...state.intact.keys()], ["root_disk"]);

  await writeFile(join(dir, "vmlinuz"), "short");
  state = await reconcile(dir, ENTRY, catalogDigest(ENTRY));
  assert.equal(state.reason, "vmlinuz changed size");

  await rm(join(dir, "disk.img"));
  state = await reconcile(dir, ENTRY, catalogDigest(ENTRY));
  assert.equal(state.reason, "disk.img is missing; vmlinuz changed size");
  assert.equal(state.intact.size, 0);
});

test("another catalog digest rebuilds, keeping artifacts whose source did not change", async () => {
  await materialised();
  const changed: CatalogEntry = {
    ...ENTRY,
    artifacts: [
      ENTRY.artifacts[0] as CatalogEntry["artifacts"][0],
      { ...(ENTRY.artifacts[1] as CatalogEntry["artifacts"][0]), sha256: "b".repeat(64) },
    ],
  };
  const state = await reconcile(dir, changed, catalogDigest(changed));
  assert.equal(state.hit, false);
  assert.equal(state.reason, "the catalog entry changed");
  assert.deepEqual([...state.intact.keys()], ["root_disk"]);
});

test("a manifest describing another image is not trusted", async () => {
  await materialised();
  const other = { ...ENTRY, id: "other" };
  const state = await reconcile(dir, other, catalogDigest(other));
  assert.equal(state.hit, false);
  assert.equal(state.reason, "manifest.json describes tiny@v1");
  assert.equal(state.intact.size, 0);
});
