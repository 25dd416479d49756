import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { spawnSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, beforeEach, test } from "node:test";
import { castraInProcess } from "../../../test/support/in-process.js";
import { fakeRunningVm } from "../../../test/support/running-vm.js";
import { CastraError } from "../../errors.js";
import type { SshEndpoint } from "../../vm/guest-access.js";
import type { VmRunRecord } from "../../vm/state.js";
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
async function running(vm: string, ssh?: SshEndpoint, extra?: Partial<VmRunRecord>): Promise<void> {
  children.push(await fakeRunningVm(dir, vm, ssh, extra));
}

/** The argv the fake ssh was called with. */
const argvOf = async (file: string) => (await readFile(file, "utf8")).trim().split("\n");

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

test("a remote command's own failure keeps its exit code, even 255, and castra adds nothing", async () => {
  await project(vmToml("devbox"));
  await running("devbox", endpoint);
  await fakeSsh(255, "backup: target full\n");
  assert.equal(await runSsh({ vm: "devbox", command: ["backup"] }, ctx()), 255);
  assert.equal(io.stderr(), "backup: target full\n");
});

test("castra ssh VM COMMAND: every word after the VM reaches the guest, -a included", async () => {
  await project(vmToml("alpine"));
  await running("alpine", endpoint);
  const argvFile = await fakeSsh(0);
  const result = await castraInProcess(["ssh", "alpine", "uname", "-a"], { cwd: dir, env: { PATH: bin } });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual((await argvOf(argvFile)).slice(-4), ["--", "alpine@127.0.0.1", "uname", "-a"]);
});

test("-o options reach ssh before castra's own, so they win (ssh keeps the first value)", async () => {
  await project(vmToml("devbox"));
  await running("devbox", endpoint);
  const argvFile = await fakeSsh(0);
  const argv = ["ssh", "-o", "LocalForward 8080 localhost:80", "-o", "LogLevel=DEBUG", "devbox"];
  assert.equal((await castraInProcess(argv, { cwd: dir, env: { PATH: bin } })).code, 0);
  const got = await argvOf(argvFile);
  // After `-F none`: no ssh_config file is read unless CASTRA_SSH_CONFIG names one.
  assert.deepEqual(got.slice(0, 6), [
    "-F",
    "none",
    "-o",
    "LocalForward 8080 localhost:80",
    "-o",
    "LogLevel=DEBUG",
  ]);
  assert.ok(got.indexOf("LogLevel=ERROR") > 6, "castra's LogLevel comes after the user's");
});

test("an ssh option given as the command (castra ssh -- -L ...) is a usage error showing the -o form", async () => {
  await project(vmToml("devbox"));
  await running("devbox", endpoint);
  await fakeSsh(0);
  const result = await castraInProcess(["ssh", "--", "-L", "8080:localhost:80"], {
    cwd: dir,
    env: { PATH: bin },
  });
  assert.equal(result.code, 64);
  assert.match(result.stderr, /error: '-L' is an ssh option, not a command to run in the guest/);
  assert.match(result.stderr, /hint: .*castra ssh -o 'LocalForward 8080 localhost:80' \[VM\]/);
});

test("the guest refuses the key: castra says so after ssh's words, with the user and where to look (69)", async () => {
  await project(vmToml("devbox"));
  await running("devbox", endpoint);
  await fakeSsh(255, "alpine@127.0.0.1: Permission denied (publickey).\n");
  const err = await fails({ vm: "devbox" });
  assert.equal(err.exitCode, 69);
  assert.equal(err.headline, "vm devbox refused the project's SSH key for user alpine");
  assert.match(err.hint ?? "", /ssh_user of vm devbox.*castra logs.*\[vm:devbox:metadata\]/);
  assert.match(io.stderr(), /Permission denied \(publickey\)/);
});

test("a guest still booting: castra says it is booting instead of ssh's raw reset (69)", async () => {
  await project(vmToml("devbox"));
  await running("devbox", endpoint, { readyPattern: "login:" });
  await fakeSsh(255, "kex_exchange_identification: read: Connection reset by peer\n");
  const err = await fails({ vm: "devbox" });
  assert.equal(err.exitCode, 69);
  assert.equal(err.headline, "vm devbox is still booting: its SSH server does not answer yet");
  assert.match(err.hint ?? "", /wait until `castra up` says the VM is ready/);
  assert.match(io.stderr(), /^devbox is still booting/m);
});

test("a ready guest without an SSH server, with the real ssh against a port that closes at once (69)", async (t) => {
  if (spawnSync("ssh", ["-V"]).error) return t.skip("no OpenSSH client here");
  const server = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  await project(vmToml("devbox"));
  await running("devbox", { ...endpoint, port });
  io = captureIO({ cwd: dir, env: { PATH: process.env.PATH } });
  const err = await fails({ vm: "devbox", command: ["true"] });
  assert.equal(err.exitCode, 69);
  assert.equal(err.headline, "vm devbox has no SSH server answering on its port 22");
  assert.match(err.detail ?? "", new RegExp(`QEMU accepted the connection on 127\\.0\\.0\\.1:${port}`));
  assert.match(err.hint ?? "", /castra logs.*ssh = false/);
});
