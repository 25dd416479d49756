import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { promisify } from "node:util";
import { byoToml, castraInProcess } from "../../../test/support/in-process.js";
import { fakeRunningVm } from "../../../test/support/running-vm.js";

const run = promisify(execFile);
const root = await realpath(await mkdtemp(join(tmpdir(), "castra-ssh-config-")));
const children: ChildProcess[] = [];
after(async () => {
  for (const child of children) child.kill("SIGKILL");
  await rm(root, { recursive: true, force: true });
});

let count = 0;
/** A project of bring-your-own VMs `names` with the project key in place; `running` get an SSH endpoint. */
async function project(names: string[], running: Record<string, number>): Promise<string> {
  const dir = join(root, `p${++count}`);
  await mkdir(join(dir, ".castra", "ssh"), { recursive: true });
  await writeFile(join(dir, ".castra", "ssh", "id_ed25519"), "not read by these tests\n", { mode: 0o600 });
  await writeFile(join(dir, "castra.toml"), byoToml(names));
  for (const [vm, port] of Object.entries(running)) {
    children.push(await fakeRunningVm(dir, vm, { host: "127.0.0.1", port, user: "alpine", automatic: true }));
  }
  return dir;
}

test("the named VM's Host block: alias, port, user, the project key and known_hosts, as ssh reads it", async (t) => {
  const dir = await project(["web", "db"], { web: 40222 });
  const result = await castraInProcess(["ssh-config", "web"], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    result.stdout,
    /^Host castra-demo-web\n {2}HostName 127\.0\.0\.1\n {2}Port 40222\n {2}User alpine\n/,
  );
  if (spawnSync("ssh", ["-V"]).error) return t.skip("no OpenSSH client to read the block");
  const file = join(dir, "ssh_config");
  await writeFile(file, result.stdout);
  const { stdout } = await run("ssh", ["-G", "-F", file, "castra-demo-web"]);
  const seen = new Map(
    stdout.split("\n").map((l) => [l.slice(0, l.indexOf(" ")), l.slice(l.indexOf(" ") + 1)]),
  );
  assert.equal(seen.get("hostname"), "127.0.0.1");
  assert.equal(seen.get("port"), "40222");
  assert.equal(seen.get("user"), "alpine");
  assert.equal(seen.get("identityfile"), join(dir, ".castra", "ssh", "id_ed25519"));
  assert.equal(seen.get("userknownhostsfile"), join(dir, ".castra", "ssh", "known_hosts"));
  assert.equal(seen.get("hostkeyalias"), "castra-demo-web");
});

test("without a name: a block per running VM, a note for the others", async () => {
  const dir = await project(["web", "db", "cache"], { web: 40222, cache: 40223 });
  const result = await castraInProcess(["ssh-config"], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(
    [...result.stdout.matchAll(/^Host (\S+)$/gm)].map((m) => m[1]),
    ["castra-demo-web", "castra-demo-cache"],
  );
  assert.equal(result.stderr, "db is not running: no Host block for it\n");
});

test("nothing running: exit 69 with the hint to start the VMs; a named stopped VM likewise", async () => {
  const dir = await project(["web", "db"], {});
  const all = await castraInProcess(["ssh-config"], { cwd: dir });
  assert.equal(all.code, 69);
  assert.match(
    all.stderr,
    /error: No VM of this project runs with SSH\n.*\nhint: start the VMs with `castra up`/,
  );
  const named = await castraInProcess(["ssh-config", "db"], { cwd: dir });
  assert.equal(named.code, 69);
  assert.match(named.stderr, /error: vm db is not running \(stopped\)/);
  const unknown = await castraInProcess(["ssh-config", "nope"], { cwd: dir });
  assert.equal(unknown.code, 64);
  assert.match(unknown.stderr, /No VM named "nope"[\s\S]*hint: name one of them, e.g. castra ssh-config web/);
});
