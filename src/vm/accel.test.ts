import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CastraError, ExitCode } from "../errors.js";
import { chooseAccelerator } from "./accel.js";

const dir = await mkdtemp(join(tmpdir(), "castra-accel-"));
after(() => rm(dir, { recursive: true, force: true }));
const usableDevice = join(dir, "kvm");
await writeFile(usableDevice, "");
const missingDevice = join(dir, "no-kvm");

test("--accel wins over CASTRA_ACCEL, which wins over auto", async () => {
  assert.deepEqual(await chooseAccelerator("tcg", { CASTRA_ACCEL: "kvm" }, usableDevice), { accel: "tcg" });
  assert.deepEqual(await chooseAccelerator(undefined, { CASTRA_ACCEL: "tcg" }, usableDevice), {
    accel: "tcg",
  });
  assert.deepEqual(await chooseAccelerator("kvm", {}, usableDevice), { accel: "kvm" });
});

test("--accel kvm without a usable KVM is exit 69 at once (before anything is downloaded)", async () => {
  const err = await chooseAccelerator("kvm", {}, missingDevice).catch((e: unknown) => e);
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, ExitCode.unavailable);
  assert.match(err.headline, /--accel kvm, but KVM is not usable here/);
  assert.match(err.hint ?? "", /--accel tcg/);
});

test("auto uses KVM when the device is readable and writable, else TCG with a warning", async () => {
  assert.deepEqual(await chooseAccelerator(undefined, {}, usableDevice), { accel: "kvm" });
  const fallback = await chooseAccelerator("auto", {}, missingDevice);
  assert.equal(fallback.accel, "tcg");
  assert.match(fallback.warning ?? "", /KVM is not available .* using TCG/);
});

test("an unknown CASTRA_ACCEL is a usage error (64)", async () => {
  const err = await chooseAccelerator(undefined, { CASTRA_ACCEL: "hvf" }).catch((e: unknown) => e);
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, ExitCode.usage);
  assert.match(err.headline, /CASTRA_ACCEL must be auto, kvm or tcg/);
});
