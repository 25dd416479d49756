import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { FakeVmHost } from "../../../test/support/fake-vm-host.js";
import { byoToml, castraInProcess, tempProject } from "../../../test/support/in-process.js";
import { loadProjectFile } from "../../config/load.js";
import { CastraError, ExitCode } from "../../errors.js";
import type { ImageEvent } from "../../images/events.js";

/** What the image pipeline reports as a managed VM's download begins. */
const DOWNLOAD_STARTED: ImageEvent = {
  type: "download-start",
  image: "alpine-minimal@v1",
  artifact: "root_disk",
  url: "http://127.0.0.1:1/alpine.vhd",
  bytes: 1024,
  resumeFrom: 0,
  attempt: 1,
};

let remove: (() => Promise<void>) | undefined;
afterEach(async () => {
  await remove?.();
  remove = undefined;
});

async function project(toml: string) {
  const made = await tempProject(toml);
  remove = made.remove;
  return { dir: made.dir, model: await loadProjectFile(`${made.dir}/castra.toml`) };
}

/** Aborts once `predicate` holds for the host (polled), like a user pressing Ctrl-C at that moment. */
function ctrlCWhen(host: FakeVmHost, predicate: (h: FakeVmHost) => boolean): AbortSignal {
  const controller = new AbortController();
  const timer = setInterval(() => {
    if (!predicate(host)) return;
    clearInterval(timer);
    controller.abort();
  }, 5);
  return controller.signal;
}

/** What `up` does to start web and then db: each VM's metadata server is started right before its QEMU. */
const STARTING_WEB_AND_DB = [
  "lock castra up",
  "disk web",
  "metadata start web",
  "launch web",
  "disk db",
  "metadata start db",
  "launch db",
];

test("up starts every VM, waits for each, and ends with where to look; exit 0", async () => {
  const { dir } = await project(byoToml(["web", "db"]));
  const host = new FakeVmHost();
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(host.actions, [...STARTING_WEB_AND_DB, "unlock"]);
  assert.match(run.stderr, /^Created overlay \.castra\/web-overlay\.qcow2 on images\/web\.qcow2$/m);
  assert.match(run.stderr, /^Starting web \(tcg, 1 CPU, 1\.0 GiB\)…$/m);
  assert.match(run.stderr, /^Waiting for db to be ready \("login:" on its serial console\)…$/m);
  // Ready means usable: castra gave the guest its key, so SSH has taken it too.
  assert.match(run.stderr, /^web booted \(login: seen after \d+\.\d s\); waiting for its SSH server…$/m);
  assert.match(run.stderr, /^✓ web is ready \(login: seen after \d+\.\d s; SSH answers after \d+\.\d s\)$/m);
  assert.match(run.stdout, /^web: serial console log in \.castra\/logs\/web-serial\.log$/m);
  assert.match(run.stdout, /^db: `castra ssh db` logs in as alpine \(SSH on 127\.0\.0\.1:40022\)$/m);
  assert.match(run.stdout, /stop everything with `castra down`\.$/m);
});

test("a VM that already runs is only waited for; one that crashed is started again with a warning", async () => {
  const { dir, model } = await project(byoToml(["web", "db"]));
  const host = new FakeVmHost();
  const web = host.seed(model, "web", "running");
  host.seed(model, "db", "error");
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0, run.stderr);
  assert.match(
    run.stderr,
    new RegExp(`^web is already running \\(pid ${web.pid}\\): nothing to start$`, "m"),
  );
  assert.match(
    run.stderr,
    /^warning: db stopped unexpectedly \(QEMU pid \d+ is gone\): starting it again on the same overlay$/m,
  );
  assert.deepEqual(host.actions, [
    "lock castra up",
    "clean run/db.pid",
    "disk db",
    "metadata start db",
    "launch db",
    "unlock",
  ]);
});

test("a VM still shutting down stops up with exit 70 and a hint to finish the down", async () => {
  const { dir, model } = await project(byoToml(["web"]));
  const host = new FakeVmHost();
  host.seed(model, "web", "shutting_down");
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(run.code, ExitCode.software);
  assert.match(run.stderr, /^error: vm web is still shutting down \(pid \d+\)$/m);
  assert.match(run.stderr, /^hint: run `castra down` to finish stopping it, then `castra up`$/m);
  assert.deepEqual(host.actions, ["lock castra up", "unlock"]);
});

test("when the second VM fails to launch, the first is stopped again and the failure is the exit code", async () => {
  const { dir, model } = await project(byoToml(["old", "web", "db"]));
  const host = new FakeVmHost({ failLaunch: ["db"] });
  host.seed(model, "old", "running");
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(run.code, ExitCode.software);
  assert.match(run.stderr, /^error: vm db failed to start: QEMU exited with status 1 while starting$/m);
  // What this up started is stopped (no ACPI wait), db's metadata server too; the VM that already ran is left alone.
  assert.ok(host.actions.includes("stop web skip-powerdown"), host.actions.join(", "));
  assert.ok(host.actions.includes("metadata stop web"), host.actions.join(", "));
  assert.ok(host.actions.includes("metadata stop db"), host.actions.join(", "));
  assert.ok(!host.actions.some((a) => a.startsWith("stop old") || a === "metadata stop old"));
  assert.deepEqual([...host.metadataServers], ["old"]);
  assert.equal(host.actions.at(-1), "unlock");
});

test("a metadata server that does not come up stops its VM and everything else this up started: exit 70", async () => {
  const { dir } = await project(byoToml(["web", "db"]));
  const host = new FakeVmHost({ failMetadata: ["db"] });
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(run.code, ExitCode.software);
  assert.match(
    run.stderr,
    /^error: The metadata server of vm db did not start: it exited \(status 65\) while starting$/m,
  );
  // Each server starts before its VM's QEMU, and QEMU is not waited for before the server listens.
  assert.deepEqual(host.actions.slice(0, STARTING_WEB_AND_DB.length), STARTING_WEB_AND_DB);
  for (const action of ["stop web skip-powerdown", "stop db skip-powerdown", "metadata stop web"])
    assert.ok(host.actions.includes(action), host.actions.join(", "));
  assert.equal(host.vms.size, 0);
  assert.equal(host.metadataServers.size, 0);
});

test("a failed preflight starts nothing and keeps its own exit code", async () => {
  const { dir } = await project(byoToml(["web"]));
  const preflightError = new CastraError("qemu-system-x86_64 is not installed", ExitCode.toolMissing, {
    hint: "install QEMU",
  });
  const host = new FakeVmHost({ preflightError });
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(run.code, ExitCode.toolMissing);
  assert.match(run.stderr, /^error: qemu-system-x86_64 is not installed$/m);
  assert.ok(!host.actions.some((a) => a.startsWith("launch")));
});

test("Ctrl-C while the guests boot stops what this up started, not what ran before; exit 130", async () => {
  const { dir, model } = await project(byoToml(["old", "web"], "[broker]\nport = 7071\n"));
  const host = new FakeVmHost({ neverReady: ["web"] });
  host.seed(model, "old", "running");
  const signal = ctrlCWhen(host, (h) => h.vms.get("web")?.state === "starting" && h.broker !== undefined);
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host, signal });
  assert.equal(run.code, ExitCode.interrupted);
  assert.match(run.stderr, /^error: Interrupted$/m);
  assert.match(run.stderr, /^ {2}Stopped what this castra up had started: web\.$/m);
  assert.ok(host.actions.includes("stop web skip-powerdown"));
  assert.ok(host.actions.includes("metadata stop web"));
  assert.ok(host.actions.includes("broker stop"));
  assert.ok(!host.actions.some((a) => a.startsWith("stop old") || a === "metadata stop old"));
  assert.equal(host.vms.get("old")?.state, "running");
  assert.deepEqual([...host.metadataServers], ["old"]);
});

test("Ctrl-C during a download stops nothing (nothing was started) and releases the lock", async () => {
  const { dir } = await project(
    '[[vms]]\nname = "alpine"\nmanaged_image = { name = "alpine-minimal", version = "v1" }\n',
  );
  const host = new FakeVmHost({
    hangInImages: true,
    imageEvents: [DOWNLOAD_STARTED],
  });
  const signal = ctrlCWhen(host, (h) => h.actions.includes("lock castra up"));
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host, signal });
  assert.equal(run.code, ExitCode.interrupted);
  assert.match(run.stderr, /^Downloading root disk \(1\.0 KiB\) from http:\/\/127\.0\.0\.1:1\/alpine\.vhd$/m);
  // What the download kept, and that the next up resumes it: on the terminal, not only in the log.
  assert.match(run.stderr, /^error: Download interrupted$/m);
  assert.match(run.stderr, /^ {2}kept 1\.0 KiB of 4\.0 KiB in rootfs\.qcow2\.partial$/m);
  assert.match(run.stderr, /^hint: run `castra up` again: it resumes where this one stopped$/m);
  assert.deepEqual(host.actions, ["lock castra up", "unlock"]);
});

test("a guest not ready in time is exit 70 and keeps running (the hint says how to watch it)", async () => {
  const { dir } = await project(byoToml(["web"]));
  const host = new FakeVmHost({ neverReady: ["web"] });
  const run = await castraInProcess(["up", "--timeout", "0.05"], { cwd: dir, vmHost: host });
  assert.equal(run.code, ExitCode.software);
  assert.match(run.stderr, /^error: vm web was not ready within 0 s$/m);
  assert.ok(!host.actions.some((a) => a.startsWith("stop")));
  assert.equal(host.vms.get("web")?.state, "starting");
});

test("--no-wait returns once QEMU runs and says how to see readiness; a broker is started and named", async () => {
  const { dir } = await project(byoToml(["web"], "[broker]\nport = 7072\n"));
  const host = new FakeVmHost();
  const run = await castraInProcess(["up", "--no-wait"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0, run.stderr);
  assert.doesNotMatch(run.stderr, /Waiting for|is ready/);
  assert.match(run.stderr, /^Host broker started: guests reach it at 169\.254\.2\.4:7072$/m);
  assert.match(run.stdout, /^Started without waiting \(--no-wait\)/m);
  assert.match(
    run.stdout,
    /^Host broker: guests reach it at 169\.254\.2\.4:7072 \(no host port: a unix socket in \.castra\/run\/\)$/m,
  );
});

test("on a terminal each booting VM has one live line, ending in its ready line", async () => {
  const { dir } = await project(byoToml(["web"]));
  const host = new FakeVmHost({ bootMs: 40 });
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host, isTTY: true });
  assert.equal(run.code, 0, run.stderr);
  const erase = "\u001b\\[2K";
  assert.match(
    run.stderr,
    new RegExp(`${erase}… web: booting, 0\\.\\d s \\(waiting for "login:" on its serial console\\)`),
  );
  assert.match(
    run.stderr,
    new RegExp(`${erase}… web: booted \\(login: seen after 0\\.\\d s\\), waiting for its SSH server`),
  );
  assert.match(
    run.stderr,
    new RegExp(`${erase}✓ web is ready \\(login: seen after 0\\.\\d s; SSH answers after 0\\.\\d s\\)\n$`),
  );
  assert.doesNotMatch(run.stderr, /Waiting for web/);
});

test("another castra holding the project is named while up waits for it", async () => {
  const { dir } = await project(byoToml(["web"]));
  const host = new FakeVmHost({ lockHolder: { pid: 4242, purpose: "castra down", since: "now" } });
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(run.code, 0, run.stderr);
  assert.match(
    run.stderr,
    /^Waiting for another castra \(pid 4242, castra down\) to finish with this project…$/m,
  );
});

test("checks that need no image come before any download: a failed preflight downloads nothing", async () => {
  const { dir } = await project(
    '[[vms]]\nname = "alpine"\nmanaged_image = { name = "alpine-minimal", version = "v1" }\n',
  );
  const preflightError = new CastraError("qemu-system-x86_64 is not installed", ExitCode.toolMissing);
  const host = new FakeVmHost({
    preflightError,
    imageEvents: [DOWNLOAD_STARTED],
  });
  const run = await castraInProcess(["up"], { cwd: dir, vmHost: host });
  assert.equal(run.code, ExitCode.toolMissing);
  assert.doesNotMatch(run.stderr, /Downloading/);
});

test("a guest whose SSH server never takes the key is not ready: exit 70, and it keeps running", async () => {
  const { dir } = await project(byoToml(["web"]));
  const host = new FakeVmHost({ noSsh: ["web"] });
  const run = await castraInProcess(["up", "--timeout", "1"], { cwd: dir, vmHost: host });
  assert.equal(run.code, ExitCode.software);
  assert.match(
    run.stderr,
    /^error: vm web booted, but its SSH server did not accept the project key in time$/m,
  );
  assert.doesNotMatch(run.stdout, /castra ssh/);
  assert.equal(host.vms.get("web")?.state, "running");
});
