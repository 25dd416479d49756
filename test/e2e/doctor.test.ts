import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runCastra } from "../support/cli.js";

// `castra doctor` as built, on this host. Run `npm run build` first.
const dir = await mkdtemp(join(tmpdir(), "castra-doctor-e2e-"));
after(() => rm(dir, { recursive: true, force: true }));

test("on this host: the accelerator line says TCG and why (or KVM that ran a guest); exit 1 only with a ✗", async () => {
  const started = Date.now();
  const result = await runCastra(["doctor"], { cwd: dir });
  const elapsed = Date.now() - started;
  const accelerator = /^([✓!]) accelerator +(.+)$/m.exec(result.stdout);
  assert.ok(accelerator, result.stdout);
  const [, mark, summary = ""] = accelerator;
  if (!existsSync("/dev/kvm")) {
    assert.equal(mark, "!");
    assert.match(summary, /^TCG: \/dev\/kvm does not exist, so VMs run emulated/);
  } else {
    // A KVM that hangs guests is found out by the one-second probe.
    assert.match(summary, /^(TCG: .+ so VMs run emulated|KVM: a test guest ran in \d+ ms)/);
  }
  assert.equal(result.code, /^✗/m.test(result.stdout) ? 1 : 0, result.stdout);
  console.log(`castra doctor took ${elapsed} ms; accelerator: ${summary}`);
  const json = await runCastra(["doctor", "--json"], { cwd: dir });
  const report = JSON.parse(json.stdout) as { ok: boolean; checks: { name: string; summary: string }[] };
  assert.equal(json.code, report.ok ? 0 : 1);
  assert.equal(report.checks.find((c) => c.name === "accelerator")?.summary, summary);
});
