import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { CastraError } from "../errors.js";
import {
  BUILTIN_CATALOG,
  catalogDigest,
  downloadUrl,
  findEntry,
  loadCatalog,
  parseImageRef,
} from "./catalog.js";
import type { CatalogEntry } from "./catalog-schema.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "castra-catalog-"));
});
after(() => rm(dir, { recursive: true, force: true }));

const SHA = "a".repeat(64);

function entry(overrides: Record<string, unknown> = {}, artifact: Record<string, unknown> = {}) {
  return {
    id: "tiny",
    version: "v2",
    artifacts: [
      {
        kind: "root_disk",
        url: "https://example.test/tiny.qcow2",
        sha256: SHA,
        size: 1024,
        final_name: "tiny.qcow2",
        ...artifact,
      },
    ],
    ...overrides,
  };
}

async function catalogFile(name: string, content: unknown): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

async function loadError(content: unknown): Promise<{ err: CastraError; file: string }> {
  const file = await catalogFile(`bad-${Math.random().toString(36).slice(2)}.json`, content);
  const err = await loadCatalog({ CASTRA_CATALOG: file }).then(
    () => assert.fail("expected the catalog to be refused"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CastraError);
  return { err, file };
}

test("the built-in alpine-minimal@v1 is Alpine 3.22.2's tiny BIOS VHD, stripped and converted to qcow2", () => {
  const alpine = findEntry({ entries: [...BUILTIN_CATALOG] }, "alpine-minimal", "v1");
  const [disk] = alpine.artifacts;
  assert.equal(alpine.artifacts.length, 1);
  assert.equal(
    disk?.url,
    "https://dl-cdn.alpinelinux.org/alpine/v3.22/releases/cloud/aws_alpine-3.22.2-x86_64-bios-tiny-r0.vhd",
  );
  assert.equal(disk?.sha256, "8f58945cd972f31b8a7e3116d2b33cdb4298e6b3c0609c0bfd083964678afffb");
  assert.equal(disk?.size, 127926784);
  assert.deepEqual(disk?.transforms, [
    { type: "strip_vhd_footer" },
    { type: "qemu_img_convert", from: "raw", to: "qcow2", output: "rootfs.qcow2" },
  ]);
  assert.deepEqual(alpine.profile, {
    cpus: 1,
    memory: 512 * 1024 * 1024,
    disk_interface: "virtio",
    ready_pattern: "login:",
    metadata: "ec2",
    login_user: "alpine",
  });
});

test("the catalog digest ignores key order and changes with any field", () => {
  const base = BUILTIN_CATALOG[0] as CatalogEntry;
  const reordered = { profile: base.profile, artifacts: base.artifacts, version: base.version, id: base.id };
  assert.equal(catalogDigest(reordered), catalogDigest(base));
  assert.match(catalogDigest(base), /^[0-9a-f]{64}$/);
  const changes: CatalogEntry[] = [
    { ...base, profile: { ...base.profile, cpus: 2 } },
    { ...base, version: "v2" },
    { ...base, artifacts: [{ ...(base.artifacts[0] as CatalogEntry["artifacts"][0]), size: 1 }] },
  ];
  for (const changed of changes) assert.notEqual(catalogDigest(changed), catalogDigest(base));
});

test("CASTRA_CATALOG adds entries and replaces same-named built-in ones; memory strings become bytes", async () => {
  const replaced = entry({ id: "alpine-minimal", version: "v1", profile: { memory: "256 MiB", cpus: 2 } });
  const file = await catalogFile("good.json", { images: [entry(), replaced] });
  const catalog = await loadCatalog({ CASTRA_CATALOG: file });
  assert.equal(catalog.entries.length, 2);
  assert.equal(findEntry(catalog, "tiny", "v2").artifacts[0]?.final_name, "tiny.qcow2");
  const alpine = findEntry(catalog, "alpine-minimal", "v1");
  assert.deepEqual(alpine.profile, { memory: 256 * 1024 * 1024, cpus: 2 });
  assert.deepEqual(alpine.artifacts[0]?.transforms, []);
});

test("catalog override errors are 65 and name the file and the JSON path", async () => {
  const cases: [unknown, RegExp][] = [
    [
      { images: [entry({}, { sha256: "abc" })] },
      /images\[0\]\.artifacts\[0\]\.sha256: must be 64 hexadecimal digits/,
    ],
    [{ images: [entry({}, { sha256: undefined })] }, /images\[0\]\.artifacts\[0\]\.sha256: is required/],
    [{ images: [entry({}, { size: 0 })] }, /images\[0\]\.artifacts\[0\]\.size: must be a positive number/],
    [{ images: [entry({}, { size: undefined })] }, /images\[0\]\.artifacts\[0\]\.size: is required/],
    [
      { images: [entry({}, { final_name: "../x" })] },
      /images\[0\]\.artifacts\[0\]\.final_name: must be a plain file name/,
    ],
    [{ images: [entry({}, { final_name: ".." })] }, /final_name: must be a file name, not empty/],
    [
      { images: [entry({}, { url: "ftp://example.test/x" })] },
      /images\[0\]\.artifacts\[0\]\.url: must use http, https or file, not ftp/,
    ],
    [
      { images: [entry({}, { transforms: [{ type: "rename", output: "a\\b" }] })] },
      /artifacts\[0\]\.transforms\[0\]\.output: must be a plain file name/,
    ],
    [
      { images: [entry({}, { transforms: [{ type: "explode" }] })] },
      /transforms\[0\]\.type: must be strip_vhd_footer/,
    ],
    [{ images: [entry({ id: "../etc" })] }, /images\[0\]\.id: must be letters, digits/],
    [
      { images: [entry({ profile: { kernel: "kernel" } })] },
      /images\[0\]\.profile\.kernel: names the kernel artifact/,
    ],
    [
      { images: [entry({ profile: { memory: "lots" } })] },
      /images\[0\]\.profile\.memory: "lots" is not a size/,
    ],
    [
      { images: [entry({ profile: { machine: "q35,initrd=/etc/shadow" } })] },
      /images\[0\]\.profile\.machine: must be a QEMU machine type such as q35/,
    ],
    [
      { images: [entry({ profile: { append: "console=ttyS0\ninit=/bin/sh" } })] },
      /images\[0\]\.profile\.append: must be printable ASCII on one line/,
    ],
    [
      { images: [entry({ profile: { disk_interface: "virtio,file=/etc/shadow" } })] },
      /images\[0\]\.profile\.disk_interface: must be a QEMU drive interface/,
    ],
    [{ images: [entry({}, { colour: "blue" })] }, /images\[0\]\.artifacts\[0\]: Unrecognized key: "colour"/],
    [{ imgs: [] }, /images: /],
    ["{ nope", /not valid JSON/],
  ];
  for (const [content, expected] of cases) {
    const { err, file } = await loadError(content);
    assert.equal(err.exitCode, 65, err.headline);
    assert.ok(err.headline.includes(file), err.headline);
    assert.match(`${err.headline}\n${err.detail ?? ""}`, expected);
  }
});

test("the last transform output must be the final name, and names may not repeat", async () => {
  const convert = { type: "qemu_img_convert", from: "raw", to: "qcow2", output: "other.qcow2" };
  const { err } = await loadError({ images: [entry({}, { transforms: [convert] })] });
  assert.match(err.headline, /transforms\[0\]\.output: must equal final_name \(tiny\.qcow2\)/);
  const twice = entry();
  twice.artifacts.push({ ...(twice.artifacts[0] as (typeof twice.artifacts)[0]), kind: "kernel" });
  const { err: dup } = await loadError({ images: [twice] });
  assert.match(dup.headline, /images\[0\]\.artifacts\[1\]\.final_name: reuses the name tiny\.qcow2/);
});

test("a missing CASTRA_CATALOG file is input missing (66)", async () => {
  const err = await loadCatalog({ CASTRA_CATALOG: join(dir, "absent.json") }).catch((e: CastraError) => e);
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, 66);
});

test("CASTRA_MIRROR fetches URL/<basename>; a bad mirror is a usage error", () => {
  const artifact = (BUILTIN_CATALOG[0] as CatalogEntry).artifacts[0] as CatalogEntry["artifacts"][0];
  assert.equal(downloadUrl(artifact, {}), artifact.url);
  assert.equal(
    downloadUrl(artifact, { CASTRA_MIRROR: "http://mirror.lan/castra/" }),
    "http://mirror.lan/castra/aws_alpine-3.22.2-x86_64-bios-tiny-r0.vhd",
  );
  assert.throws(() => downloadUrl(artifact, { CASTRA_MIRROR: "ftp://mirror" }), { exitCode: 64 });
});

test("an unknown image is a data error listing the known ones", () => {
  assert.throws(
    () => findEntry({ entries: [...BUILTIN_CATALOG] }, "debian", "12"),
    (err: CastraError) => {
      assert.equal(err.exitCode, 65);
      assert.match(err.headline, /Unknown managed image debian@12/);
      assert.match(err.detail ?? "", /alpine-minimal@v1/);
      return true;
    },
  );
});

test("ID@VERSION parses, a bare ID picks the only version", () => {
  const catalog = { entries: [...BUILTIN_CATALOG] };
  assert.deepEqual(parseImageRef("alpine-minimal@v1", catalog), { name: "alpine-minimal", version: "v1" });
  assert.deepEqual(parseImageRef("alpine-minimal", catalog), { name: "alpine-minimal", version: "v1" });
  assert.throws(() => parseImageRef("alpine-minimal@", catalog), { exitCode: 64 });
  assert.throws(() => parseImageRef("nothing", catalog), { exitCode: 65 });
});
