import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { type CliResult, runCastra } from "../support/cli.js";
import { buildTestGuest, qemuSkip, type TestGuest } from "../support/guest.js";
import { guestCatalog } from "../support/guest-catalog.js";
import { writeJson } from "../support/image-fixtures.js";
import { killProjectQemus } from "../support/processes.js";

// The project inside the VM, end to end under TCG: a catalog whose alpine-minimal@v1 is the test guest with
// SSH for alpine (doas to root) and the kernel's 9p modules, booted by direct kernel boot. Run `npm run build`.
const skip = qemuSkip();
const BOOT_MS = 300_000;
const WITH_9P = "console=ttyS0 quiet castra.disk=1 castra.ssh=1 castra.mdtimeout=5";

let guest: TestGuest;
let work: string;
const projects: string[] = [];

/** The test guest as a cloud image castra logs into: metadata for its keys, SSH for alpine. */
function catalog(append: string) {
  const urlOf = (name: string) => pathToFileURL(join(dirname(guest.kernel), name)).href;
  return guestCatalog(guest, { urlOf, append, profile: { metadata: "ec2", login_user: "alpine" } });
}

before(async () => {
  if (skip) return;
  guest = await buildTestGuest();
  work = await realpath(await mkdtemp(join(tmpdir(), "castra-mounts-")));
  await writeJson(join(work, "catalog.json"), catalog(WITH_9P));
  await writeJson(join(work, "catalog-no9p.json"), catalog(`${WITH_9P} castra.no9p=1`));
});

after(async () => {
  if (skip) return;
  for (const name of projects) await killProjectQemus(name);
  if (work) await rm(work, { recursive: true, force: true });
});

/** A project directory whose path has spaces and commas; its name is the synthesized project's name. */
async function newProject(name: string): Promise<string> {
  const dir = join(work, `${name}, with spaces`);
  await mkdir(dir);
  projects.push(`${name}, with spaces`);
  return dir;
}

function castra(dir: string, args: string[], catalogFile = "catalog.json"): Promise<CliResult> {
  return runCastra(args, {
    cwd: dir,
    env: { CASTRA_ACCEL: "tcg", CASTRA_CATALOG: join(work, catalogFile), CASTRA_CACHE_DIR: "off" },
    timeoutMs: BOOT_MS,
  });
}

function ok(result: CliResult, what: string): CliResult {
  assert.equal(result.code, 0, `${what}: exit ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** A shell command line run in the guest as alpine through `castra ssh`. */
const inGuest = (dir: string, command: string) => castra(dir, ["ssh", "--", command]);

describe("the project directory in the guest", { skip }, () => {
  let dir: string;

  test("zero-config: the project is read-only at /project, castra's state is an empty read-only directory", async () => {
    dir = await newProject("zero");
    await writeFile(join(dir, "hello.txt"), "from the host\n");
    const up = ok(await castra(dir, ["up"]), "up");
    assert.match(up.stderr, /^✓ alpine: mounted \/project ← \. \(read-only\) \(\d+\.\d s\)$/m);

    assert.equal(ok(await inGuest(dir, "cat /project/hello.txt"), "read").stdout, "from the host\n");
    const write = await inGuest(dir, "echo no >/project/new.txt");
    assert.notEqual(write.code, 0);
    assert.match(write.stderr, /Read-only file system/);
    const hidden = await inGuest(
      dir,
      "ls -A /project/.castra; doas ls -A /project/.castra; doas touch /project/.castra/x",
    );
    assert.equal(hidden.stdout, "", "empty, even for root");
    assert.match(hidden.stderr, /Read-only file system/);

    const status = JSON.parse(ok(await castra(dir, ["status", "--json"]), "status").stdout);
    assert.deepEqual(status.vms[0].mounts, [
      { host: dir, guest: "/project", writable: false, tag: "castra0", mounted: true },
    ]);
    assert.match(
      ok(await castra(dir, ["status"]), "status").stdout,
      /^alpine\s+\/project\s+\.\s+read-only\s+yes$/m,
    );
  });

  test("a file the host changes is seen at once in the guest", async () => {
    await writeFile(join(dir, "hello.txt"), "changed on the host\n");
    assert.equal(ok(await inGuest(dir, "cat /project/hello.txt"), "read").stdout, "changed on the host\n");
    ok(await castra(dir, ["down"]), "down");
  });
});

describe("writable mounts and provisioning", { skip }, () => {
  let dir: string;
  const steps = (once: string) =>
    [
      `[[vms.provision]]\nrun = "echo ${once}; echo ${once} >>/project/ran.txt"`,
      '[[vms.provision]]\nrun = "echo always >>/project/ran.txt"\nwhen = "always"',
      '[[vms.provision]]\nscript = "setup.sh"',
    ].join("\n");
  const config = (extra: string) =>
    writeFile(
      join(dir, "castra.toml"),
      `[[vms]]\nname = "box"\nmanaged_image = { name = "alpine-minimal", version = "v1" }\n` +
        `[[vms.mounts]]\nwritable = true\n[[vms.mounts]]\nhost = "data"\nguest = "/srv/$(touch /tmp/pwned); x"\n${extra}`,
    );
  const ran = async () => (await readFile(join(dir, "ran.txt"), "utf8")).trim().split("\n");

  test("steps run in order as root once the mounts are up; what the guest writes belongs to the host user", async () => {
    dir = await newProject("provisioned");
    await mkdir(join(dir, "data"));
    await writeFile(join(dir, "data", "in-data.txt"), "data\n");
    await writeFile(
      join(dir, "setup.sh"),
      '#!/bin/sh\necho "script as $(id -u)"\necho script >>/project/ran.txt\n',
    );
    await config(steps("first"));
    const up = ok(await castra(dir, ["up"]), "up");
    assert.match(
      up.stderr,
      /mounted \/project ← \. \(writable\), \/srv\/\$\(touch \/tmp\/pwned\); x ← data \(read-only\)/,
    );
    assert.match(up.stderr, /^Provisioning box: 3 steps$/m);
    assert.match(up.stderr, /^box: step 1\/3 run: echo first;.*\n\[box\] first$/m);
    assert.match(up.stderr, /^\[box\] script as 0$/m);
    assert.deepEqual(await ran(), ["first", "always", "script"]);
    const log = await readFile(join(dir, ".castra", "logs", "box-provision.log"), "utf8");
    assert.match(log, /step 3\/3 script: setup\.sh\n.* {3}script as 0\n.*step 3\/3 exit 0 after/);

    const write = ok(await inGuest(dir, "id -un; echo guest >/project/by-alpine.txt"), "write as alpine");
    assert.equal(write.stdout, "alpine\n");
    for (const file of ["by-alpine.txt", "ran.txt"]) {
      const info = await stat(join(dir, file));
      assert.equal(info.uid, process.getuid?.(), `${file} is the host user's`);
    }
    const odd = ok(
      await inGuest(dir, "cat '/srv/$(touch /tmp/pwned); x/in-data.txt'; test -e /tmp/pwned || echo clean"),
      "odd path",
    );
    assert.equal(odd.stdout, "data\nclean\n", "the guest path was a path, never a command");
  });

  test("the next boot skips the once step and runs the always step; a changed once step runs again", async () => {
    ok(await castra(dir, ["down"]), "down");
    const again = ok(await castra(dir, ["up"]), "second up");
    assert.match(again.stderr, /^Provisioning box: 1 step \(2 already done\)$/m);
    assert.deepEqual(await ran(), ["first", "always", "script", "always"]);
    ok(await castra(dir, ["down"]), "down");
    await config(steps("second"));
    ok(await castra(dir, ["up"]), "up after the change");
    assert.deepEqual((await ran()).slice(4), ["second", "always"]);
  });

  test("a failing step is exit 70 naming it; the VM keeps running; castra provision runs every step again", async () => {
    await config(
      `${steps("second")}\n[[vms.provision]]\nrun = "echo about to fail; exit 4"\nwhen = "always"`,
    );
    ok(await castra(dir, ["down"]), "down");
    const failed = await castra(dir, ["up"]);
    assert.equal(failed.code, 70, failed.stderr);
    assert.match(failed.stderr, /^error: vm box: provisioning step 4 of 4 failed: exit status 4$/m);
    assert.match(
      failed.stderr,
      /^ {2}step: run: echo about to fail; exit 4\n {2}its last lines:\n {4}about to fail$/m,
    );
    const status = await castra(dir, ["status", "--json"]);
    const [box] = JSON.parse(status.stdout).vms;
    assert.equal(box.state, "running");
    assert.deepEqual(box.provision.last_run.failed_step, {
      number: 4,
      label: "run: echo about to fail; exit 4",
      exit_status: 4,
    });

    await config(steps("second"));
    const before = (await ran()).length;
    const again = ok(await castra(dir, ["provision"]), "castra provision");
    assert.match(again.stderr, /^✓ box provisioned: 3 steps in/m);
    assert.deepEqual((await ran()).slice(before), ["second", "always", "script"]);
    assert.doesNotMatch((await castra(dir, ["status"])).stderr, /provisioning failed/);
    ok(await castra(dir, ["down"]), "down");
  });
});

test("a guest without 9p: a warning names the tag and the manual mount line; up exits 0", {
  skip,
}, async () => {
  const dir = await newProject("no9p");
  const up = ok(await castra(dir, ["up"], "catalog-no9p.json"), "up");
  assert.match(
    up.stderr,
    /^warning: alpine: \/project \(mount tag castra0\) is not mounted: .*No such device/m,
  );
  assert.match(
    up.stderr,
    /^ {2}to mount it by hand, run as root in the guest: mkdir -p \/project && mount -t 9p -o ro,trans=virtio,version=9p2000\.L,msize=512000,cache=mmap castra0 \/project$/m,
  );
  const status = JSON.parse(ok(await castra(dir, ["status", "--json"]), "status").stdout);
  assert.equal(status.vms[0].mounts[0].mounted, false);
  ok(await castra(dir, ["down"], "catalog-no9p.json"), "down");
});
