import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  assertSameDisk,
  buildImageFixture,
  type ImageFixture,
  makeVhd,
  seededBytes,
} from "../../test/support/image-fixtures.js";
import { CastraError } from "../errors.js";
import type { Artifact } from "./catalog-schema.js";
import { stripVhdFooter } from "./disk-conversion.js";
import { applyTransforms, requireQemuImg, type TransformStep } from "./transforms.js";

let dir: string;
let fixture: ImageFixture;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "castra-transforms-"));
  fixture = buildImageFixture(dir, 2);
});
after(() => rm(dir, { recursive: true, force: true }));

const diskArtifact = (transforms: Artifact["transforms"]): Artifact => ({
  kind: "root_disk",
  url: "http://127.0.0.1/disk.vhd",
  sha256: fixture.vhd.sha256,
  size: fixture.vhd.size,
  final_name: "rootfs.qcow2",
  transforms,
});

function assertDataError(err: unknown, pattern: RegExp): true {
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, 65);
  assert.match(err.headline, pattern);
  return true;
}

test("strip_vhd_footer turns a fixed VHD into the raw disk it was made from", async () => {
  const work = join(dir, "strip.partial");
  await copyFile(fixture.vhd.path, work);
  await stripVhdFooter(work);
  assert.deepEqual(await readFile(work), await readFile(fixture.raw));
});

test("strip_vhd_footer refuses a file without the conectix cookie, naming it, and leaves it untouched", async () => {
  const plain = join(dir, "plain.img");
  await writeFile(plain, seededBytes(4096, 3));
  await assert.rejects(stripVhdFooter(plain), (err) => assertDataError(err, /plain\.img is not a VHD/));
  assert.equal((await stat(plain)).size, 4096);
  const tiny = join(dir, "tiny.img");
  await writeFile(tiny, "conectix");
  await assert.rejects(stripVhdFooter(tiny), (err) => assertDataError(err, /tiny\.img is not a VHD/));
});

test("strip_vhd_footer refuses a dynamic VHD, whose data is not raw", async () => {
  const dynamic = join(dir, "dynamic.vhd");
  makeVhd(fixture.raw, dynamic, "dynamic");
  await assert.rejects(stripVhdFooter(dynamic), (err) =>
    assertDataError(err, /dynamic\.vhd is not a fixed VHD/),
  );
});

test("strip then convert leaves a qcow2 on a temporary name that holds the raw disk", async () => {
  await mkdir(join(dir, "chain"));
  const input = join(dir, "chain", "rootfs.qcow2.partial");
  await copyFile(fixture.vhd.path, input);
  const steps: TransformStep[] = [];
  const artifact = diskArtifact([
    { type: "strip_vhd_footer" },
    { type: "qemu_img_convert", from: "raw", to: "qcow2", output: "rootfs.qcow2" },
  ]);
  const out = await applyTransforms(input, artifact, { onStep: (s) => steps.push(s) });
  assert.equal(out, join(dir, "chain", "rootfs.qcow2.tmp.partial"));
  assertSameDisk(fixture.raw, out);
  assert.deepEqual(steps, [
    { name: "strip_vhd_footer", from: "vhd", to: "raw", summary: "Stripped the VHD footer" },
    { name: "qemu_img_convert", from: "raw", to: "qcow2", summary: "Converted raw → qcow2" },
  ]);
  // The download stays: stripped, it is still a prefix of the VHD that a later run can resume.
  assert.equal((await stat(input)).size, fixture.vhd.size - 512);
});

test("a download that is not the format its conversion names is a data error naming it, leaving no temporary", async () => {
  const work = join(dir, "convert");
  await mkdir(work);
  const input = join(work, "rootfs.qcow2.partial");
  await writeFile(input, seededBytes(65536, 5));
  const artifact = diskArtifact([
    { type: "qemu_img_convert", from: "qcow2", to: "raw", output: "rootfs.qcow2" },
  ]);
  await assert.rejects(applyTransforms(input, artifact, {}), (err) =>
    // qemu-img reads it (for the files it refers to) before converting it: that is where it fails.
    assertDataError(err, /Cannot inspect the disk image .*rootfs\.qcow2\.partial$/),
  );
  assert.deepEqual(await readdir(work), ["rootfs.qcow2.partial"]);
});

test("qemu-img missing from PATH is exit 72 with install lines for three systems", async () => {
  const empty = await mkdtemp(join(tmpdir(), "castra-empty-path-"));
  await assert.rejects(requireQemuImg({ PATH: empty }, "alpine-minimal@v1"), (err: CastraError) => {
    assert.equal(err.exitCode, 72);
    assert.match(err.detail ?? "", /alpine-minimal@v1/);
    assert.match(err.detail ?? "", /Debian\/Ubuntu: sudo apt-get install qemu-utils/);
    assert.match(err.detail ?? "", /Fedora: +sudo dnf install qemu-img/);
    assert.match(err.detail ?? "", /macOS: +brew install qemu/);
    return true;
  });
  await rm(empty, { recursive: true });
  assert.match(await requireQemuImg(process.env, "x"), /qemu-img$/);
});
