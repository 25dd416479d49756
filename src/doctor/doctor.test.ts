import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { checkAccelerator } from "./accelerator.js";
import { checkNode } from "./tools.js";
import { atLeast, MIN_NODE, versionIn } from "./versions.js";

const dir = await mkdtemp(join(tmpdir(), "castra-doctor-"));
after(() => rm(dir, { recursive: true, force: true }));

test("castra's minimum Node is package.json's engines; older is a failure", async () => {
  const pkg = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8"));
  assert.equal(pkg.engines.node, `>=${MIN_NODE.replace(/\.0$/, "")}`);
  assert.equal(checkNode("20.19.0").status, "ok");
  const old = checkNode("18.20.4");
  assert.equal(old.status, "fail");
  assert.equal(old.summary, "18.20.4: too old (castra needs 20.19 or newer)");
});

test("versions: found in QEMU's banner, compared part by part", () => {
  assert.equal(versionIn("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)"), "7.2.22");
  assert.equal(versionIn("qemu-img version 10.0.2"), "10.0.2");
  assert.ok(atLeast("10.0.0", "6.2.0"));
  assert.ok(atLeast("6.2", "6.2.0"));
  assert.ok(!atLeast("6.1.1", "6.2.0"));
});

test("a usable KVM device whose guests never run: TCG with the reason, found out within a second", async () => {
  const device = join(dir, "kvm");
  await writeFile(device, "");
  const qemu = join(dir, "qemu-system-x86_64");
  await writeFile(qemu, "#!/bin/sh\nexec sleep 30\n");
  await chmod(qemu, 0o755);
  const started = Date.now();
  const check = await checkAccelerator({ kvmDevice: device, qemuSystem: qemu, env: {} });
  assert.ok(Date.now() - started < 1800, `took ${Date.now() - started} ms`);
  assert.equal(check.status, "warn");
  assert.equal(
    check.summary,
    "TCG: a KVM test guest did not run (the test guest did not run within 1000 ms), so VMs run emulated (much slower)",
  );
  assert.match(check.fix ?? "", /castra up --accel tcg/);
});

test("no KVM device, or one the user cannot open: TCG, and what would change that", async () => {
  const missing = await checkAccelerator({ kvmDevice: join(dir, "none"), env: { CASTRA_ACCEL: "tcg" } });
  assert.equal(
    missing.summary,
    `TCG: ${join(dir, "none")} does not exist, so VMs run emulated (much slower) (CASTRA_ACCEL=tcg decides for castra up)`,
  );
  if (process.getuid?.() === 0) return; // root opens any file
  const locked = join(dir, "locked-kvm");
  await writeFile(locked, "", { mode: 0o600 });
  await chmod(locked, 0);
  const denied = await checkAccelerator({ kvmDevice: locked, env: {} });
  assert.match(denied.summary, /is not readable and writable by you/);
  assert.match(denied.fix ?? "", /usermod -aG kvm/);
});
