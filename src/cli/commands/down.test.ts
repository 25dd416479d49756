import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, test } from "node:test";
import { FakeVmHost } from "../../../test/support/fake-vm-host.js";
import { byoToml, castraInProcess, tempProject } from "../../../test/support/in-process.js";
import { loadProjectFile } from "../../config/load.js";

let remove: (() => Promise<void>) | undefined;
afterEach(async () => {
  await remove?.();
  remove = undefined;
});

/** A project whose `.castra/run/` exists, as after any `up`. */
async function project(toml: string) {
  const made = await tempProject(toml);
  remove = made.remove;
  await mkdir(join(made.dir, ".castra", "run"), { recursive: true });
  return { dir: made.dir, model: await loadProjectFile(join(made.dir, "castra.toml")) };
}

test("down in a project that never ran says so, takes no lock, exit 0", async () => {
  const made = await tempProject(byoToml(["web"]));
  remove = made.remove;
  const host = new FakeVmHost();
  const run = await castraInProcess(["down"], { cwd: made.dir, vmHost: host });
  assert.equal(run.code, 0);
  assert.equal(run.stdout, "Nothing is running.\n");
  assert.deepEqual(host.actions, []);
});

test("down powers off every running VM with ACPI, with the flag's timeout, and reports each", async () => {
  const { dir, model } = await project(byoToml(["web", "db"]));
  const host = new FakeVmHost();
  const web = host.seed(model, "web", "running");
  host.seed(model, "db", "starting");
  const run = await castraInProcess(["down", "--timeout", "5"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0, run.stderr);
  assert.match(
    run.stderr,
    new RegExp(`^Stopping web \\(pid ${web.pid}\\): ACPI power-down, waiting up to 5 s…$`, "m"),
  );
  assert.match(run.stderr, /^✓ web powered off \(ACPI\) after \d+\.\d s$/m);
  assert.match(run.stderr, /^✓ db powered off \(ACPI\) after \d+\.\d s$/m);
  assert.deepEqual(host.actions, [
    "lock castra down",
    "stop web",
    "stop db",
    "metadata stop web",
    "metadata stop db",
    "unlock",
  ]);
  assert.equal(host.metadataServers.size, 0);
  assert.equal(run.stdout, "");
});

test("a VM that had crashed only loses its runtime files; nothing else is stopped", async () => {
  const { dir, model } = await project(byoToml(["web"]));
  const host = new FakeVmHost();
  const web = host.seed(model, "web", "error");
  const run = await castraInProcess(["down"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0);
  assert.match(
    run.stderr,
    new RegExp(
      `^web had already stopped unexpectedly \\(QEMU pid ${web.pid} is gone\\): removed its runtime files$`,
      "m",
    ),
  );
  assert.equal(run.stdout, "Nothing is running.\n");
  assert.deepEqual(host.actions, ["lock castra down", "clean run/web.pid", "unlock"]);
});

test("a crashed VM's metadata server that is still running is stopped with its runtime files", async () => {
  const { dir, model } = await project(byoToml(["web"]));
  const host = new FakeVmHost();
  host.seed(model, "web", "error");
  host.metadataServers.add("web");
  const run = await castraInProcess(["down"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0);
  assert.deepEqual(host.actions, ["lock castra down", "metadata stop web", "clean run/web.pid", "unlock"]);
});

test("a pid file whose pid is another program now is cleared, never signalled", async () => {
  const { dir, model } = await project(byoToml(["web"]));
  const host = new FakeVmHost();
  host.seed(model, "web", "stopped");
  const run = await castraInProcess(["down"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0);
  assert.match(
    run.stderr,
    /^web was not running \(pid \d+ is another program now\): removed its stale pid file$/m,
  );
  assert.ok(!host.actions.some((a) => a.startsWith("stop")));
});

test("the broker is stopped with the VMs; a guest that ignores ACPI is reported as SIGTERM'd", async () => {
  const { dir, model } = await project(byoToml(["web"], "[broker]\nport = 7073\n"));
  const host = new FakeVmHost({ stoppedBy: "sigterm" });
  host.seed(model, "web", "running");
  await host.startBroker({ port: 7073 });
  const run = await castraInProcess(["down"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /^✓ web stopped by SIGTERM after \d+\.\d s$/m);
  assert.match(run.stderr, /^✓ Host broker stopped$/m);
  assert.equal(host.broker, undefined);
});

test("down --force goes straight to signals; --timeout 0 too; a booting VM gets a short ACPI wait", async () => {
  const { dir, model } = await project(byoToml(["web", "db"]));
  const host = new FakeVmHost();
  host.seed(model, "web", "running");
  const forced = await castraInProcess(["down", "--force", "web"], { cwd: dir, vmHost: host });
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stderr, /^Stopping web \(pid \d+\): SIGTERM now \(--force\)…$/m);
  assert.ok(host.actions.includes("stop web skip-powerdown"));
  host.seed(model, "web", "running");
  const zero = await castraInProcess(["down", "--timeout", "0", "web"], { cwd: dir, vmHost: host });
  assert.match(zero.stderr, /SIGTERM now \(--timeout 0\)/);
  host.seed(model, "db", "starting");
  const booting = await castraInProcess(["down", "db"], { cwd: dir, vmHost: host });
  assert.match(
    booting.stderr,
    /^Stopping db \(pid \d+\): still booting, so ACPI power-down gets only 5 s…$/m,
  );
});

test("seconds waited show while a guest powers off; Ctrl-C stops it with SIGTERM and exits 130, state clear", async () => {
  const { dir, model } = await project(byoToml(["web"]));
  const host = new FakeVmHost({ ignoreAcpi: true });
  host.seed(model, "web", "running");
  const waited = await castraInProcess(["down", "--timeout", "10"], { cwd: dir, vmHost: host });
  assert.equal(waited.code, 0);
  assert.match(waited.stderr, /^web: waiting for the guest to power off, 10 s of 10 s$/m);
  assert.match(waited.stderr, /^warning: web: the guest did not power off within 10 s; sending SIGTERM$/m);

  host.seed(model, "web", "running");
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 60);
  const interrupted = await castraInProcess(["down"], { cwd: dir, vmHost: host, signal: controller.signal });
  assert.equal(interrupted.code, 130);
  assert.match(
    interrupted.stderr,
    /^warning: web: interrupted: stopping it now with SIGTERM instead of waiting$/m,
  );
  assert.match(
    interrupted.stderr,
    /^ {2}Stopped web with signals instead of waiting for the guests to power off\.$/m,
  );
  assert.equal(host.vms.has("web"), false, "the VM is stopped, not left shutting down");
});
