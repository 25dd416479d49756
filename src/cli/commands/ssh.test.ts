import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, beforeEach, test } from "node:test";
import { fakeRunningVm } from "../../../test/support/running-vm.js";
import { CastraError } from "../../errors.js";
import type { SshEndpoint } from "../../vm/guest-access.js";
import { type CapturedIO, captureIO } from "../io.js";
import type { SshOptions } from "./specs.js";
import { runSsh } from "./ssh.js";

const root = await realpath(await mkdtemp(join(tmpdir(), "castra-ssh-cmd-")));
const children: ChildProcess[] = [];
after(async () => {
  for (const child of children) child.kill("SIGKILL");
  await rm(root, { recursive: true, force: true });
});

let dir: string;
let bin: string;
let io: CapturedIO;
let count = 0;

beforeEach(async () => {
  dir = join(root, `p${++count}`);
  bin = join(dir, "bin");
  await mkdir(join(dir, ".castra", "ssh"), { recursive: true });
  await mkdir(bin);
  await writeFile(join(dir, ".castra", "ssh", "id_ed25519"), "not read by these tests\n", { mode: 0o600 });
  io = captureIO({ cwd: dir, env: { PATH: bin } });
});

const vmToml = (name: string, extra = "") => `[[vms]]\nname = "${name}"\nbase_image = "b.qcow2"\n${extra}`;
const ctx = () => ({ io, global: { skipDiscovery: true }, signal: new AbortController().signal });

async function project(...vms: string[]): Promise<void> {
  await writeFile(join(dir, "castra.toml"), `[project]\nname = "demo"\n${vms.join("")}`);
}

/** Records `vm` as running, with the SSH endpoint `up` would record. */
async function running(vm: string, ssh?: SshEndpoint): Promise<void> {
  children.push(await fakeRunningVm(dir, vm, ssh));
}

/** A fake `ssh` on PATH: records its argv, writes `stderr`, exits with `code`. */
async function fakeSsh(code: number, stderr = ""): Promise<string> {
  const argvFile = join(dir, "ssh-argv");
  const script = `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done > '${argvFile}'\nprintf '%s' '${stderr}' >&2\nexit ${code}\n`;
  await writeFile(join(bin, "ssh"), script);
  await chmod(join(bin, "ssh"), 0o755);
  return argvFile;
}

async function fails(opts: SshOptions): Promise<CastraError> {
  try {
    await runSsh(opts, ctx());
  } catch (err) {
    assert.ok(err instanceof CastraError, String(err));
    return err;
  }
  assert.fail("expected castra ssh to fail");
}

const endpoint: SshEndpoint = { host: "127.0.0.1", port: 40222, user: "alpine", automatic: true };

test("the only VM is the default; `-- COMMAND` runs there with the project key, user and known_hosts", async () => {
  await project(vmToml("devbox"));
  await running("devbox", endpoint);
  const argvFile = await fakeSsh(7);
  const code = await runSsh({ vm: "uname", command: ["-a"], commandOnly: true }, ctx());
  assert.equal(code, 7, "castra ssh exits with ssh's exit code");
  const argv = (await readFile(argvFile, "utf8")).trim().split("\n");
  assert.deepEqual(argv.slice(-4), ["--", "alpine@127.0.0.1", "uname", "-a"]);
  assert.ok(argv.includes(`IdentityFile="${join(dir, ".castra", "ssh", "id_ed25519")}"`), argv.join(" "));
  assert.ok(argv.includes(`UserKnownHostsFile="${join(dir, ".castra", "ssh", "known_hosts")}"`));
  assert.ok(argv.includes("HostKeyAlias=castra-demo-devbox"));
  assert.deepEqual(argv.slice(argv.indexOf("-p"), argv.indexOf("-p") + 2), ["-p", "40222"]);
});

test("ssh_user in castra.toml wins over the user recorded at up", async () => {
  await project(vmToml("devbox", 'ssh_user = "dev"\n'));
  await running("devbox", endpoint);
  const argvFile = await fakeSsh(0);
  assert.equal(await runSsh({ vm: "devbox" }, ctx()), 0);
  assert.equal((await readFile(argvFile, "utf8")).trim().split("\n").at(-1), "dev@127.0.0.1");
});

test("several VMs and no name: a usage error listing them; an unknown name likewise", async () => {
  await project(vmToml("web"), vmToml("db"));
  const which = await fails({});
  assert.equal(which.exitCode, 64);
  assert.match(`${which.headline} ${which.detail}`, /several.*VMs: web, db/s);
  const unknown = await fails({ vm: "cache" });
  assert.equal(unknown.exitCode, 64);
  assert.match(unknown.headline, /No VM named "cache"/);
});

test("a stopped VM: exit 69 with the hint to run castra up", async () => {
  await project(vmToml("devbox"));
  const err = await fails({});
  assert.equal(err.exitCode, 69);
  assert.match(err.headline, /vm devbox is not running/);
  assert.match(err.hint ?? "", /castra up/);
});

test("a VM running without an SSH forward (ssh = false): exit 69 naming the setting", async () => {
  await project(vmToml("devbox", "ssh = false\n"));
  await running("devbox");
  const err = await fails({});
  assert.equal(err.exitCode, 69);
  assert.match(err.headline, /vm devbox has no SSH forward/);
  assert.match(err.hint ?? "", /remove ssh = false/);
});

test("no ssh on PATH: exit 72 with install hints", async () => {
  await project(vmToml("devbox"));
  await running("devbox", endpoint);
  const err = await fails({});
  assert.equal(err.exitCode, 72);
  assert.match(err.headline, /ssh is not installed/);
  assert.match(err.hint ?? "", /apt-get install openssh-client/);
});

test("a refused host key: ssh's own words pass through, then castra's error with the ssh-keygen -R hint", async () => {
  await project(vmToml("devbox"));
  await running("devbox", endpoint);
  await fakeSsh(255, "Host key verification failed.\n");
  const err = await fails({});
  assert.equal(err.exitCode, 65);
  assert.match(err.headline, /SSH host key of VM devbox changed/);
  assert.equal(
    err.hint,
    `if the VM was recreated, forget the old key: ssh-keygen -R castra-demo-devbox -f ${join(dir, ".castra/ssh/known_hosts")}`,
  );
  assert.match(io.stderr(), /Host key verification failed\./);
});

test("any other ssh failure keeps ssh's exit code (255) and adds nothing", async () => {
  await project(vmToml("devbox"));
  await running("devbox", endpoint);
  await fakeSsh(255, "ssh: connect to host 127.0.0.1 port 40222: Connection refused\n");
  assert.equal(await runSsh({}, ctx()), 255);
  assert.equal(io.stderr(), "ssh: connect to host 127.0.0.1 port 40222: Connection refused\n");
});
