import assert from "node:assert/strict";
import { chmod, chown, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import { byoToml, castraInProcess, tempProject } from "../../../test/support/in-process.js";

const project = await tempProject(byoToml(["web"]));
after(project.remove);
const bin = join(project.dir, "bin");
await mkdir(bin);

/** A stand-in tool on the test's PATH that prints `output` (stdout and stderr) and exits 0. */
async function tool(name: string, output: string): Promise<void> {
  await writeFile(join(bin, name), `#!/bin/sh\necho '${output}'\necho '${output}' >&2\n`);
  await chmod(join(bin, name), 0o755);
}

await tool("qemu-system-x86_64", "QEMU emulator version 5.2.0 (Debian 1:5.2+dfsg-11)");
await tool("qemu-img", "qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7)");
await tool("ssh-keygen", "unused");

const env = (extra: NodeJS.ProcessEnv = {}) => ({
  PATH: bin,
  CASTRA_CACHE_DIR: join(project.dir, "cache"),
  ...extra,
});

interface JsonReport {
  ok: boolean;
  checks: { name: string; status: string; summary: string; fix?: string }[];
}

async function report(extra: NodeJS.ProcessEnv = {}, cwd = project.dir) {
  const result = await castraInProcess(["doctor", "--json"], { cwd, env: env(extra) });
  const json = JSON.parse(result.stdout) as JsonReport;
  const check = (name: string) => {
    const found = json.checks.find((c) => c.name === name);
    assert.ok(found, `no ${name} check in ${result.stdout}`);
    return found;
  };
  return { result, json, check };
}

test("a line per check, a fix under each problem, and exit 1 when something is missing", async () => {
  const result = await castraInProcess(["doctor"], { cwd: project.dir, env: env() });
  assert.equal(result.code, 1, result.stderr);
  assert.match(
    result.stdout,
    /^! qemu-system-x86_64 +5\.2\.0 at .*: older than 6\.2, the oldest castra supports$/m,
  );
  assert.match(result.stdout, /^✓ qemu-img +7\.2\.22 at /m);
  assert.match(
    result.stdout,
    /^✗ ssh +not found on PATH \(`castra ssh` runs it\)\n +fix: install the OpenSSH client/m,
  );
  assert.match(result.stdout, /^✓ ssh-keygen /m);
  // Whatever this host's KVM, the stand-in QEMU never runs a guest: TCG, with the reason.
  assert.match(result.stdout, /^! accelerator +TCG: .+, so VMs run emulated \(much slower\)\n +fix: /m);
  assert.match(
    result.stdout,
    /^\n1 problem, 2 warnings: fix the problems above, then run `castra doctor` again$/m,
  );
});

test("--json: the same checks; proxy passwords are never shown", async () => {
  const { result, json, check } = await report({
    HTTPS_PROXY: "http://ann:s3cret@proxy.example:3128",
    no_proxy: "localhost,.internal",
  });
  assert.equal(json.ok, false);
  assert.equal(check("proxy").status, "ok");
  assert.equal(
    check("proxy").summary,
    "HTTPS_PROXY=http://ann:***@proxy.example:3128, no_proxy=localhost,.internal",
  );
  assert.doesNotMatch(result.stdout + result.stderr, /s3cret/);
  const socks = (await report({ https_proxy: "socks5://ann:s3cret@proxy.example:1080" })).check("proxy");
  assert.equal(socks.status, "fail");
  assert.match(
    socks.summary,
    /^https_proxy=socks5:\/\/ann:\*\*\*@proxy\.example:1080: https_proxy is not a usable proxy/,
  );
  assert.match(socks.fix ?? "", /set https_proxy=http:\/\/HOST:PORT/);
  assert.equal(check("sockets").status, "ok");
  assert.equal(check("project-disk").status, "ok");
});

test("a download cache others can write is a problem with its fix; one still to be made is fine", async () => {
  assert.equal((await report()).check("cache-dir").status, "ok");
  const open = join(project.dir, "open-cache");
  await mkdir(open);
  await chmod(open, 0o777);
  const cache = (await report({ CASTRA_CACHE_DIR: open })).check("cache-dir");
  assert.equal(cache.status, "fail");
  assert.equal(cache.summary, `${open} is writable by others (mode 0777)`);
  assert.equal(cache.fix, `chmod go-w ${open}`);
});

test("a download cache that belongs to someone else is a problem (as root: chown it away)", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("needs root to give a directory away");
  const foreign = join(project.dir, "foreign-cache");
  await mkdir(foreign, { mode: 0o755 });
  await chown(foreign, 4242, 4242);
  const cache = (await report({ CASTRA_CACHE_DIR: foreign })).check("cache-dir");
  assert.equal(cache.status, "fail");
  assert.match(cache.summary, /belongs to uid 4242, not you \(uid 0\)/);
  assert.match(cache.fix ?? "", /sudo chown -R/);
});

test("a castra.toml that does not load is one more problem; the host is still checked", async () => {
  const broken = await tempProject("[[vms]]\nname = 3\n");
  try {
    const { result, check } = await report({}, broken.dir);
    assert.equal(result.code, 1);
    assert.equal(check("project").status, "fail");
    assert.match(check("project").summary, /castra\.toml/);
    assert.equal(check("qemu-img").status, "ok");
  } finally {
    await broken.remove();
  }
});
