import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, test } from "node:test";
import { FakeVmHost } from "../../../test/support/fake-vm-host.js";
import { castraInProcess, tempProject } from "../../../test/support/in-process.js";
import { loadProjectFile } from "../../config/load.js";
import { ExitCode } from "../../errors.js";
import type { VmStatusJson } from "./status.js";

/** Mounting and provisioning in `up`, `castra provision`, `suspend` and `status`, in process with a fake host. */

let remove: (() => Promise<void>) | undefined;
afterEach(async () => {
  await remove?.();
  remove = undefined;
});

const MANAGED = 'managed_image = { name = "alpine-minimal", version = "v1" }';
const STEPS =
  '[[vms.provision]]\nrun = "apk add git"\n[[vms.provision]]\nrun = "date"\nwhen = "always"\n' +
  '[[vms.provision]]\nscript = "setup.sh"\n';

async function project(body: string, names = ["web"]) {
  const vms = names.map((name) => `[[vms]]\nname = "${name}"\n${MANAGED}\n${body}`).join("\n");
  const made = await tempProject(`[project]\nname = "demo"\n${vms}`);
  remove = made.remove;
  await mkdir(join(made.dir, ".castra", "run"), { recursive: true });
  await writeFile(join(made.dir, "setup.sh"), "echo set up\n");
  return { dir: made.dir, model: await loadProjectFile(join(made.dir, "castra.toml")) };
}

const steps = (host: FakeVmHost) => host.actions.filter((a) => a.startsWith("step "));

test("up mounts the project read-only at /project once the guest is ready, then provisions in order", async () => {
  const { dir } = await project(STEPS);
  const host = new FakeVmHost();
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0, run.stderr);
  const order = host.actions.filter((a) => !a.startsWith("record "));
  assert.deepEqual(order, [
    "lock castra up",
    "disk web",
    "metadata start web",
    "launch web",
    "unlock",
    "mount web",
    "step web run: apk add git",
    "step web run: date",
    "step web script: setup.sh",
  ]);
  assert.match(run.stderr, /^✓ web is ready .*\n✓ web: mounted \/project ← \. \(read-only\) \(\d+\.\d s\)$/m);
  assert.match(run.stderr, /^Provisioning web: 3 steps$/m);
  assert.match(run.stderr, /^web: step 1\/3 run: apk add git\n\[web\] ran run: apk add git$/m);
  assert.match(run.stderr, /^✓ web provisioned: 3 steps in \d+\.\d s$/m);
});

test("the next boot skips once steps that ran and runs always steps; a changed step runs again", async () => {
  const { dir } = await project(STEPS);
  const host = new FakeVmHost();
  assert.equal((await castraInProcess(["up"], { cwd: dir, vmHost: host })).code, 0);
  assert.equal((await castraInProcess(["down"], { cwd: dir, vmHost: host })).code, 0);
  host.actions.length = 0;
  const again = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(steps(host), ["step web run: date"]);
  assert.match(again.stderr, /^Provisioning web: 1 step \(2 already done\)$/m);

  const toml = join(dir, "castra.toml");
  const { readFile } = await import("node:fs/promises");
  await writeFile(toml, (await readFile(toml, "utf8")).replace("apk add git", "apk add git make"));
  await castraInProcess(["down"], { cwd: dir, vmHost: host });
  host.actions.length = 0;
  assert.equal((await castraInProcess(["up"], { cwd: dir, vmHost: host })).code, 0);
  assert.deepEqual(steps(host), ["step web run: apk add git make", "step web run: date"]);
});

test("a failing step stops up with exit 70 naming the VM, the step and its status; the VM keeps running", async () => {
  const { dir } = await project(STEPS);
  const host = new FakeVmHost({ failingSteps: { date: 3 } });
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(run.code, ExitCode.software);
  assert.match(run.stderr, /^error: vm web: provisioning step 2 of 3 failed: exit status 3$/m);
  assert.match(
    run.stderr,
    /^ {2}step: run: date\n {2}its last lines:\n {4}boom\n {2}vm web keeps running\.$/m,
  );
  assert.match(
    run.stderr,
    /^hint: see all of its output with `castra logs`, fix the step .*then run `castra provision`$/m,
  );
  assert.deepEqual(steps(host), ["step web run: apk add git", "step web run: date"]);
  assert.ok(!host.actions.some((a) => a.startsWith("stop")));
  assert.equal(host.vms.get("web")?.state, "running");

  const status = await castraInProcess(["status"], { cwd: dir, vmHost: host });
  assert.match(
    status.stderr,
    /^warning: web: provisioning failed at step 2 \(run: date\) with exit status 3$/m,
  );
  const json = JSON.parse((await castraInProcess(["status", "--json"], { cwd: dir, vmHost: host })).stdout);
  const web = json.vms[0] as VmStatusJson;
  assert.deepEqual(web.provision.last_run?.failed_step, { number: 2, label: "run: date", exit_status: 3 });
  assert.equal(web.provision.last_run?.ok, false);
});

test("castra provision runs every step again on running VMs, and clears the failure once they pass", async () => {
  const { dir } = await project(STEPS);
  const failing = new FakeVmHost({ failingSteps: { date: 1 } });
  assert.equal((await castraInProcess(["up"], { cwd: dir, vmHost: failing })).code, ExitCode.software);
  const host = new FakeVmHost();
  for (const [name, vm] of failing.vms) host.vms.set(name, vm);
  const run = await castraInProcess(["provision"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(steps(host), [
    "step web run: apk add git",
    "step web run: date",
    "step web script: setup.sh",
  ]);
  assert.ok(host.actions.includes("mount web"), "a share that is not mounted gets mounted");
  const status = await castraInProcess(["status"], { cwd: dir, vmHost: host });
  assert.doesNotMatch(status.stderr, /provisioning failed/);
});

test("castra provision of a VM that does not run is exit 69; without names only running VMs are provisioned", async () => {
  const { dir, model } = await project('[[vms.provision]]\nrun = "true"\n', ["web", "db"]);
  const host = new FakeVmHost();
  const named = await castraInProcess(["provision", "db"], { cwd: dir, vmHost: host });
  assert.equal(named.code, ExitCode.unavailable);
  assert.match(named.stderr, /^error: vm db is not running \(stopped\)$/m);
  assert.match(named.stderr, /^hint: start it with `castra up db`/m);
  const none = await castraInProcess(["provision"], { cwd: dir, vmHost: host });
  assert.equal(none.code, ExitCode.unavailable);
  assert.match(none.stderr, /^error: No VM of this project is running$/m);
  host.seed(model, "web", "running");
  const some = await castraInProcess(["provision"], { cwd: dir, vmHost: host });
  assert.equal(some.code, 0, some.stderr);
  assert.match(some.stderr, /^db is stopped: nothing to provision$/m);
  assert.deepEqual(steps(host), ["step web run: true"]);
});

test("a share castra cannot mount is a warning with its tag and the line to run by hand; up exits 0", async () => {
  const { dir } = await project('[[vms.mounts]]\nhost = "."\nguest = "/my project"\nwritable = true\n');
  const host = new FakeVmHost({
    mountFails: { web: "mount: mounting castra0 on /my project failed: No such device" },
  });
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0, run.stderr);
  assert.match(
    run.stderr,
    /^warning: web: \/my project \(mount tag castra0\) is not mounted: mount: mounting castra0 on \/my project failed: No such device$/m,
  );
  assert.match(
    run.stderr,
    /^ {2}to mount it by hand, run as root in the guest: mkdir -p '\/my project' && mount -t 9p -o trans=virtio,version=9p2000\.L,msize=512000,cache=mmap castra0 '\/my project'$/m,
  );
});

test("a mount whose host directory is missing stops up with exit 66 before anything starts", async () => {
  const { dir } = await project('[[vms.mounts]]\nhost = "gone"\n');
  const host = new FakeVmHost({ missingPath: "gone" });
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(run.code, ExitCode.noInput);
  assert.match(run.stderr, /^error: mount of vm web: .*gone does not exist$/m);
  assert.ok(!host.actions.some((a) => a.startsWith("launch")));
});

test("--no-wait leaves mounting and provisioning to castra provision, and says so", async () => {
  const { dir } = await project(STEPS);
  const host = new FakeVmHost();
  const run = await castraInProcess(["up", "--no-wait"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0, run.stderr);
  assert.match(
    run.stderr,
    /^Not waiting \(--no-wait\): mounts and provisioning of web wait for `castra provision` once ready$/m,
  );
  assert.ok(!host.actions.some((a) => a.startsWith("mount") || a.startsWith("step")));
});

test("Ctrl-C during a provisioning step stops the VM this up started; exit 130", async () => {
  const { dir } = await project(STEPS);
  const host = new FakeVmHost({ hangingStep: "apk" });
  const controller = new AbortController();
  const timer = setInterval(() => {
    if (host.actions.some((a) => a.startsWith("step "))) controller.abort();
  }, 5);
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host, signal: controller.signal });
  clearInterval(timer);
  assert.equal(run.code, ExitCode.interrupted);
  assert.ok(host.actions.includes("stop web skip-powerdown"), host.actions.join(", "));
});

test("suspend unmounts the shares first; a resumed guest gets them back and no always step", async () => {
  const { dir, model } = await project(STEPS);
  const host = new FakeVmHost();
  host.seed(model, "web", "running");
  const suspended = await castraInProcess(["suspend"], { cwd: dir, vmHost: host });
  assert.equal(suspended.code, 0, suspended.stderr);
  assert.deepEqual(host.actions.slice(1, 3), ["unmount web", "suspend web"]);
  host.actions.length = 0;
  const resumed = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.ok(host.actions.includes("mount web"));
  assert.deepEqual(steps(host), ["step web run: apk add git", "step web script: setup.sh"]);
  assert.match(resumed.stderr, /^Provisioning web: 2 steps \(1 run at boot only, and this was a resume\)$/m);
});

test("a share in use in the guest refuses the suspend (exit 70); the VM keeps running with its shares", async () => {
  const { dir, model } = await project("");
  const host = new FakeVmHost({ unmountFails: { web: "umount: can't unmount /project: Resource busy" } });
  host.seed(model, "web", "running");
  const run = await castraInProcess(["suspend"], { cwd: dir, vmHost: host });
  assert.equal(run.code, ExitCode.software);
  assert.match(run.stderr, /^error: vm web: \/project cannot be unmounted in the guest$/m);
  assert.match(run.stderr, /^ {2}\/project: umount: can't unmount \/project: Resource busy$/m);
  assert.ok(!host.actions.includes("suspend web"));
  assert.ok(host.actions.includes("mount web"), "the shares are mounted again");
  assert.equal(host.vms.get("web")?.state, "running");
});
