import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, test } from "node:test";
import { fakeRunningVm } from "../../../test/support/running-vm.js";
import { captureIO } from "../io.js";
import { runStatus, type VmStatusJson } from "./status.js";

let dir: string;
let sleeper: ChildProcess | undefined;

before(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "castra-status-")));
  await writeFile(
    join(dir, "castra.toml"),
    [
      '[project]\nname = "demo"',
      '[[vms]]\nname = "devbox"\nbase_image = "base.qcow2"\nmemory = "256 MiB"',
      "[[vms.port_forwards]]\nhost = 8080\nguest = 80",
      '[[vms]]\nname = "db"\nbase_image = "base.qcow2"',
    ].join("\n"),
  );
  sleeper = await fakeRunningVm(dir, "devbox", {
    host: "127.0.0.1",
    port: 40222,
    user: "alpine",
    automatic: true,
  });
});

after(async () => {
  sleeper?.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

async function status(json: boolean) {
  const io = captureIO({ cwd: dir });
  const code = await runStatus(
    { json },
    { io, global: { skipDiscovery: true }, signal: new AbortController().signal },
  );
  return { code, stdout: io.stdout() };
}

test("the table shows a running VM's automatic SSH forward after its declared ones", async () => {
  const { code, stdout } = await status(false);
  assert.equal(code, 0);
  assert.match(
    stdout,
    /^devbox\s+running\s+1\/256 MiB\s+\S+\s+-\s+127\.0\.0\.1:8080→80\/tcp, 127\.0\.0\.1:40222→22\/tcp \(ssh\)$/m,
  );
  assert.match(stdout, /^db\s+stopped\s+.*\s+-$/m);
});

test("JSON gives ssh { host, port, user } for a running VM and null for a stopped one", async () => {
  const { stdout } = await status(true);
  const [devbox, db] = JSON.parse(stdout).vms as VmStatusJson[];
  assert.deepEqual(devbox?.ssh, { host: "127.0.0.1", port: 40222, user: "alpine" });
  assert.deepEqual(devbox?.forwards, [
    { host_address: "127.0.0.1", host: 8080, guest: 80, protocol: "tcp" },
    { host_address: "127.0.0.1", host: 40222, guest: 22, protocol: "tcp", automatic: true },
  ]);
  assert.equal(db?.ssh, null);
  assert.deepEqual(db?.forwards, []);
});

test("a VM whose QEMU died is `error`: exit 1, QEMU's last lines and the next command", async () => {
  const { FakeVmHost } = await import("../../../test/support/fake-vm-host.js");
  const { castraInProcess } = await import("../../../test/support/in-process.js");
  const { loadProjectFile } = await import("../../config/load.js");
  const host = new FakeVmHost();
  const crashed = host.seed(await loadProjectFile(join(dir, "castra.toml")), "db", "error");
  const table = await castraInProcess(["status", "--skip-discovery"], { cwd: dir, vmHost: host });
  assert.equal(table.code, 1);
  assert.match(table.stdout, /^db\s+error\s/m);
  assert.match(
    table.stderr,
    new RegExp(`^warning: db: QEMU \\(pid ${crashed.pid}\\) exited without \`castra down\``, "m"),
  );
  assert.match(table.stderr, /^ {4}qemu: terminating on signal 9$/m);
  assert.match(table.stderr, /^hint: run `castra up` to start it again on the same overlay/m);
  const json = await castraInProcess(["status", "--json"], { cwd: dir, vmHost: host });
  assert.equal(json.code, 1);
  const db = (JSON.parse(json.stdout).vms as VmStatusJson[]).find((vm) => vm.name === "db");
  assert.deepEqual(db?.last_log_lines, ["qemu: terminating on signal 9"]);
});

test("status names the project and its directory first, also from a directory below it", async () => {
  const { castraInProcess } = await import("../../../test/support/in-process.js");
  const { mkdir } = await import("node:fs/promises");
  await mkdir(join(dir, "src", "app"), { recursive: true });
  const below = await castraInProcess(["status"], { cwd: join(dir, "src", "app") });
  assert.equal(below.stdout.split("\n")[0], `Project demo (${dir})`);
  const json = await castraInProcess(["status", "--json"], { cwd: join(dir, "src", "app") });
  assert.equal(JSON.parse(json.stdout).directory, dir);
});

test("below a zero-config project that ran, status and down act on it, not on a new project", async () => {
  const { castraInProcess, tempProject } = await import("../../../test/support/in-process.js");
  const { FakeVmHost } = await import("../../../test/support/fake-vm-host.js");
  const { synthesizeProject } = await import("../../config/load.js");
  const { mkdir } = await import("node:fs/promises");
  const zero = await tempProject();
  try {
    await mkdir(join(zero.dir, ".castra", "run"), { recursive: true });
    await mkdir(join(zero.dir, "src", "app"), { recursive: true });
    const host = new FakeVmHost();
    host.seed(synthesizeProject(zero.dir), "alpine", "running");
    const cwd = join(zero.dir, "src", "app");
    const status = await castraInProcess(["status"], { cwd, vmHost: host });
    assert.match(
      status.stdout,
      new RegExp(
        `^Project ${basename(zero.dir)} \\(${zero.dir}, no castra.toml: the default project\\)$`,
        "m",
      ),
    );
    assert.match(status.stdout, /^alpine\s+running\s/m);
    const down = await castraInProcess(["down"], { cwd, vmHost: host });
    assert.equal(down.code, 0);
    assert.ok(host.actions.includes("stop alpine"));
  } finally {
    await zero.remove();
  }
});

test("status lists each mount and whether up mounted it in the guest that runs now", async () => {
  const project = await realpath(await mkdtemp(join(tmpdir(), "castra-status-mounts-")));
  await writeFile(
    join(project, "castra.toml"),
    '[[vms]]\nname = "web"\nbase_image = "b.qcow2"\n[[vms.mounts]]\n[[vms.mounts]]\nhost = "/srv"\nguest = "/data"\nwritable = true\n' +
      '[[vms]]\nname = "db"\nbase_image = "b.qcow2"\n[[vms.mounts]]\n',
  );
  const vm = await fakeRunningVm(project, "web");
  try {
    const { startedAt } = JSON.parse(await readFile(join(project, ".castra", "run", "web.pid"), "utf8"));
    const shares = [
      { tag: "castra0", guest: "/project", mounted: true },
      { tag: "castra1", guest: "/data", mounted: false, reason: "No such device" },
    ];
    await writeFile(
      join(project, ".castra", "run", "web-mounts.json"),
      JSON.stringify({ startedAt, shares }),
    );
    const io = captureIO({ cwd: project });
    await runStatus({}, { io, global: { skipDiscovery: true }, signal: new AbortController().signal });
    assert.match(io.stdout(), /^VM\s+MOUNT\s+HOST\s+MODE\s+MOUNTED$/m);
    assert.match(io.stdout(), /^web\s+\/project\s+\.\s+read-only\s+yes$/m);
    assert.match(io.stdout(), /^web\s+\/data\s+\/srv\s+writable\s+no$/m);
    assert.match(io.stdout(), /^db\s+\/project\s+\.\s+read-only\s+-$/m);
    const json = captureIO({ cwd: project });
    await runStatus(
      { json: true },
      { io: json, global: { skipDiscovery: true }, signal: new AbortController().signal },
    );
    const [web, db] = JSON.parse(json.stdout()).vms as VmStatusJson[];
    assert.deepEqual(web?.mounts[1], {
      host: "/srv",
      guest: "/data",
      writable: true,
      tag: "castra1",
      mounted: false,
      reason: "No such device",
    });
    assert.equal(db?.mounts[0]?.mounted, null, "a VM that does not run has nothing mounted to report");
    assert.deepEqual(web?.provision, { steps: 0, last_run: null });
  } finally {
    vm.kill("SIGKILL");
    await rm(project, { recursive: true, force: true });
  }
});
