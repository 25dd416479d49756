import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, test } from "node:test";
import { FakeVmHost } from "../../../test/support/fake-vm-host.js";
import { byoToml, castraInProcess, tempProject } from "../../../test/support/in-process.js";
import { loadProjectFile } from "../../config/load.js";
import { ExitCode } from "../../errors.js";
import type { VmStatusJson } from "./status.js";

/** Per-VM targets, suspend and resume, destroy and snapshots, in process against a fake host. */

let remove: (() => Promise<void>) | undefined;
afterEach(async () => {
  await remove?.();
  remove = undefined;
});

async function project(names = ["web", "db"], extra = "") {
  const made = await tempProject(byoToml(names, extra));
  remove = made.remove;
  await mkdir(join(made.dir, ".castra", "run"), { recursive: true });
  const model = await loadProjectFile(join(made.dir, "castra.toml"));
  return { dir: made.dir, model };
}

test("up web starts only web; an unknown name is exit 64 with the known names and a did-you-mean", async () => {
  const { dir } = await project();
  const host = new FakeVmHost();
  const run = await castraInProcess(["up", "web"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(host.actions, [
    "lock castra up",
    "disk web",
    "metadata start web",
    "launch web",
    "unlock",
  ]);
  const typo = await castraInProcess(["up", "wbe"], { cwd: dir, vmHost: host });
  assert.equal(typo.code, ExitCode.usage);
  assert.match(typo.stderr, /^error: No VM named "wbe" in this project$/m);
  assert.match(typo.stderr, /^ {2}VMs: web, db\.$/m);
  assert.match(typo.stderr, /^hint: did you mean `castra up web`\?$/m);
});

test("down web stops web only, and the broker keeps serving the VM still running", async () => {
  const { dir, model } = await project(["web", "db"], "[broker]\nport = 7075\n");
  const host = new FakeVmHost();
  host.seed(model, "web", "running");
  host.seed(model, "db", "running");
  await host.startBroker({ port: 7075 });
  const run = await castraInProcess(["down", "web"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0, run.stderr);
  assert.ok(host.actions.includes("stop web"));
  assert.ok(!host.actions.includes("stop db"));
  assert.ok(!host.actions.includes("broker stop"));
  const rest = await castraInProcess(["down", "db"], { cwd: dir, vmHost: host });
  assert.equal(rest.code, 0);
  assert.match(rest.stderr, /^✓ Host broker stopped$/m);
});

test("suspend saves running VMs and skips the others; status shows suspended, up resumes", async () => {
  const { dir, model } = await project();
  const host = new FakeVmHost();
  host.seed(model, "web", "running");
  const suspended = await castraInProcess(["suspend"], { cwd: dir, vmHost: host });
  assert.equal(suspended.code, 0, suspended.stderr);
  assert.match(suspended.stderr, /^Suspending web \(pid \d+\): saving 256 MiB of memory and its devices…$/m);
  assert.match(suspended.stderr, /^✓ web suspended in \d+\.\d s \(saved state 96 MiB\)$/m);
  assert.match(suspended.stderr, /^db is stopped: nothing to suspend$/m);
  assert.equal(suspended.stdout, "Resume with `castra up`.\n");
  // The suspended VM's QEMU is gone, and so is its metadata server.
  assert.ok(host.actions.includes("metadata stop web"), host.actions.join(", "));
  assert.ok(!host.metadataServers.has("web"));

  const status = await castraInProcess(["status", "--json"], { cwd: dir, vmHost: host });
  const web = (JSON.parse(status.stdout).vms as VmStatusJson[]).find((vm) => vm.name === "web");
  assert.equal(web?.state, "suspended");
  assert.equal(web?.suspended?.state_bytes, 96 * 1024 * 1024);
  const table = await castraInProcess(["status", "web"], { cwd: dir, vmHost: host });
  assert.match(table.stdout, /^web\s+suspended\s/m);
  assert.doesNotMatch(table.stdout, /^db/m);

  const resumed = await castraInProcess(["up", "web"], { cwd: dir, vmHost: host });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /^Resuming web from its state saved \d{4}-\d\d-\d\d \d\d:\d\d…$/m);
  const serverAt = host.actions.lastIndexOf("metadata start web");
  assert.ok(serverAt >= 0 && serverAt < host.actions.indexOf("resume web"), host.actions.join(", "));
  assert.ok(host.metadataServers.has("web"));
});

test("up --discard-suspended and down both throw a saved state away, saying so", async () => {
  const { dir, model } = await project();
  const host = new FakeVmHost();
  host.seedSuspended(model, "web");
  host.seedSuspended(model, "db");
  const up = await castraInProcess(["up", "web", "--discard-suspended"], { cwd: dir, vmHost: host });
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stderr, /^web: discarded its suspended state \(saved .+\)$/m);
  assert.ok(host.actions.includes("discard web") && host.actions.includes("launch web"));
  const down = await castraInProcess(["down", "db"], { cwd: dir, vmHost: host });
  assert.equal(down.code, 0);
  assert.match(down.stderr, /^db: discarded its suspended state/m);
  assert.doesNotMatch(down.stdout, /Nothing is running/);
});

test("destroy asks first: without a terminal and --yes it refuses (64); with --yes it stops and deletes", async () => {
  const { dir, model } = await project();
  const host = new FakeVmHost();
  host.seed(model, "web", "running");
  const refused = await castraInProcess(["destroy", "web"], { cwd: dir, vmHost: host });
  assert.equal(refused.code, ExitCode.usage);
  assert.match(refused.stderr, /^hint: run `castra destroy web --yes`/m);
  assert.deepEqual(host.actions, []);
  const done = await castraInProcess(["destroy", "web", "--yes"], { cwd: dir, vmHost: host });
  assert.equal(done.code, 0, done.stderr);
  assert.deepEqual(host.actions, [
    "lock castra destroy",
    "stop web",
    "metadata stop web",
    "remove web",
    "unlock",
  ]);
  assert.match(done.stderr, /^✓ web destroyed: removed \.castra\/web-overlay\.qcow2/m);
  assert.equal(done.stdout, "The next `castra up` boots web from its base image.\n");
});

test("snapshots: save live and stopped, list, restore, delete; names and states are checked", async () => {
  const { dir, model } = await project(["web"]);
  await writeFile(join(dir, ".castra", "web-overlay.qcow2"), "qcow2");
  const host = new FakeVmHost();
  host.seed(model, "web", "running");
  const castra = (argv: string[]) => castraInProcess(["snapshot", ...argv], { cwd: dir, vmHost: host });

  const live = await castra(["save", "before"]);
  assert.equal(live.code, 0, live.stderr);
  assert.match(live.stderr, /^✓ Saved snapshot before of web \(disk and memory\), 64 MiB of memory$/m);
  assert.equal((await castra(["save", "before"])).code, ExitCode.dataErr, "a taken name is refused");
  const list = await castra(["list"]);
  assert.match(list.stdout, /^NAME\s+DATE\s+MEMORY\s+SIZE$/m);
  assert.match(list.stdout, /^before\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+yes\s+64 MiB$/m);
  const restored = await castra(["restore", "--vm", "web", "before"]);
  assert.equal(restored.code, 0, restored.stderr);
  assert.match(restored.stderr, /^✓ web is back at snapshot before$/m);
  assert.ok(host.actions.includes("snapshot restore web before live"));

  const missing = await castra(["restore", "nothing"]);
  assert.equal(missing.code, ExitCode.noInput);
  assert.match(missing.stderr, /^ {2}Its snapshots: before\.$/m);
  assert.equal((await castra(["save", "no spaces"])).code, ExitCode.usage);
  assert.equal((await castra(["save", "castra-suspend"])).code, ExitCode.usage);

  host.vms.delete("web");
  const cold = await castra(["save", "disk-only"]);
  assert.match(cold.stderr, /\(disk only: the VM was stopped\)/);
  host.seed(model, "web", "running");
  const refused = await castra(["restore", "disk-only"]);
  assert.equal(refused.code, ExitCode.usage);
  assert.match(refused.stderr, /^error: disk-only holds no memory/m);
  assert.equal((await castra(["delete", "before"])).code, 0);

  host.seedSuspended(model, "web");
  const suspended = await castra(["save", "later"]);
  assert.equal(suspended.code, ExitCode.usage);
  assert.match(suspended.stderr, /^hint: resume it first \(`castra up web`\)/m);
});

test("config drift: status shows what QEMU has, and status and up say which settings wait for a restart", async () => {
  const toml = byoToml(["web"]).replace(
    'base_image = "images/web.qcow2"\n',
    'base_image = "images/web.qcow2"\nmemory = "512 MiB"\n[[vms.port_forwards]]\nhost = 8080\nguest = 80\n',
  );
  const made = await tempProject(toml);
  remove = made.remove;
  await mkdir(join(made.dir, ".castra", "run"), { recursive: true });
  const host = new FakeVmHost();
  host.seed(await loadProjectFile(join(made.dir, "castra.toml")), "web", "running");
  const status = await castraInProcess(["status"], { cwd: made.dir, vmHost: host });
  assert.match(status.stdout, /^web\s+running\s+1\/256 MiB\s+\S+\s+-\s+127\.0\.0\.1:40022→22\/tcp \(ssh\)$/m);
  assert.match(
    status.stderr,
    /^warning: web runs without what castra\.toml now says: memory 256 MiB → 512 MiB, forward tcp 127\.0\.0\.1:8080→80 added$/m,
  );
  assert.match(status.stderr, /^hint: they take effect after `castra down web` and `castra up web`$/m);
  const json = await castraInProcess(["status", "--json"], { cwd: made.dir, vmHost: host });
  const web = (JSON.parse(json.stdout).vms as VmStatusJson[])[0];
  assert.deepEqual(web?.pending_changes, ["memory 256 MiB → 512 MiB", "forward tcp 127.0.0.1:8080→80 added"]);
  const up = await castraInProcess(["up"], { cwd: made.dir, vmHost: host });
  assert.equal(up.code, 0);
  assert.match(up.stderr, /^warning: web runs without what castra\.toml now says: memory 256 MiB → 512 MiB/m);
});
