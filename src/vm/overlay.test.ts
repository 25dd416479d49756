import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CastraError, ExitCode } from "../errors.js";
import { findOnPath } from "../host/tools.js";
import { inspectBaseImage, readImageInfo } from "./base-image.js";
import { ensureOverlay } from "./overlay.js";

const qemuImg = await findOnPath("qemu-img");
const skip = !qemuImg && !process.env.CI ? "qemu-img is not installed (apt-get install qemu-utils)" : false;
if (skip) console.log(`# skipping overlay tests: ${skip}`);
// A comma in the directory: qemu-img must get it verbatim.
const dir = await mkdtemp(join(tmpdir(), "castra-overlay,"));
after(() => rm(dir, { recursive: true, force: true }));

function image(name: string, format: string): string {
  const path = join(dir, name);
  execFileSync(qemuImg as string, ["create", "-q", "-f", format, path, "16M"]);
  return path;
}

test("an overlay is created on the detected base format, then reused as is", { skip }, async () => {
  const raw = image("base.raw", "raw");
  const base = await inspectBaseImage(qemuImg as string, { path: raw });
  assert.equal(base.format, "raw");
  const overlay = join(dir, "sub", "vm-overlay.qcow2");
  assert.equal(await ensureOverlay(qemuImg as string, overlay, base, "vm"), "created");
  const info = await readImageInfo(qemuImg as string, overlay);
  assert.deepEqual([info.format, info.backingFile, info.backingFormat], ["qcow2", raw, "raw"]);
  const before = await stat(overlay);
  assert.equal(await ensureOverlay(qemuImg as string, overlay, base, "vm"), "reused");
  assert.equal((await stat(overlay)).mtimeMs, before.mtimeMs);
});

test("an overlay backed by another image is an error (65) with a hint, and is left untouched", {
  skip,
}, async () => {
  const first = await inspectBaseImage(qemuImg as string, { path: image("first.qcow2", "qcow2") });
  const second = await inspectBaseImage(qemuImg as string, { path: image("second.qcow2", "qcow2") });
  const overlay = join(dir, "shared-overlay.qcow2");
  await ensureOverlay(qemuImg as string, overlay, first, "devbox");
  const bytes = await readFile(overlay);
  const err = await ensureOverlay(qemuImg as string, overlay, second, "devbox").catch((e: unknown) => e);
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, ExitCode.dataErr);
  assert.match(err.detail ?? "", /first\.qcow2, but vm devbox now uses .*second\.qcow2/);
  assert.match(err.hint ?? "", /mv .*shared-overlay\.qcow2/);
  assert.deepEqual(await readFile(overlay), bytes);
});

test("a file that is not a disk image cannot be inspected: exit 65", { skip }, async () => {
  const err = await inspectBaseImage(qemuImg as string, { path: join(dir, "missing.qcow2") }).catch(
    (e: unknown) => e,
  );
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, ExitCode.dataErr);
});

test("an overlay whose header names an external data file is refused (65) and left untouched", {
  skip,
}, async () => {
  const base = await inspectBaseImage(qemuImg as string, { path: image("data-base.qcow2", "qcow2") });
  const overlay = join(dir, "data-overlay.qcow2");
  const outside = join(dir, "elsewhere.raw");
  execFileSync(qemuImg as string, [
    ...["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base.path],
    ...["-o", `data_file=${outside.replaceAll(",", ",,")}`, overlay],
  ]);
  const bytes = await readFile(overlay);
  const err = await ensureOverlay(qemuImg as string, overlay, base, "devbox").catch((e: unknown) => e);
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, ExitCode.dataErr);
  assert.equal(err.headline, `The overlay of vm devbox keeps its data in another file: ${outside}`);
  assert.deepEqual(await readFile(overlay), bytes);
});
