import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import { byoToml, castraInProcess, tempProject } from "../../../test/support/in-process.js";

const project = await tempProject(byoToml(["web", "db"]));
after(project.remove);

/** What `castra __complete SHELL -- WORDS…` answers in the project, one line each. */
async function complete(words: string[], shell = "bash", cwd = project.dir): Promise<string[]> {
  const result = await castraInProcess(["__complete", shell, "--", ...words], { cwd });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  return result.stdout.split("\n").filter(Boolean);
}

test("castra completion SHELL prints a script that asks castra __complete; another shell is a usage error", async () => {
  const expected = {
    bash: /^complete -F _castra castra$/m,
    zsh: /^#compdef castra$/m,
    fish: /^complete -c castra /m,
  };
  for (const [shell, pattern] of Object.entries(expected)) {
    const result = await castraInProcess(["completion", shell], { cwd: project.dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, pattern);
    assert.match(result.stdout, new RegExp(`castra __complete ${shell} -- `));
  }
  const tcsh = await castraInProcess(["completion", "tcsh"], { cwd: project.dir });
  assert.equal(tcsh.code, 64);
  assert.match(tcsh.stderr, /error: argument 'shell' must be bash, zsh or fish, not 'tcsh'/);
});

test("commands and subcommands from the spec table, hidden ones left out", async () => {
  assert.deepEqual(await complete(["st"]), ["status"]);
  assert.deepEqual(await complete(["ssh"]), ["ssh", "ssh-config"]);
  assert.deepEqual(await complete(["images", "p"]), ["pull", "prune"]);
  const all = await complete([""]);
  assert.ok(all.includes("completion") && all.includes("help"), all.join(" "));
  assert.ok(!all.some((w) => w.startsWith("_") || w === "broker"), all.join(" "));
});

test("the project's VM names where a command takes a VM, also with -c naming another project", async () => {
  assert.deepEqual(await complete(["ssh", ""]), ["web", "db"]);
  assert.deepEqual(await complete(["ssh-config", "w"]), ["web"]);
  assert.deepEqual(await complete(["ssh", "-o", "ForwardAgent=yes", ""]), ["web", "db"]);
  const other = await tempProject(byoToml(["api"]));
  try {
    assert.deepEqual(await complete(["-c", `${other.dir}/castra.toml`, "ssh", ""]), ["api"]);
  } finally {
    await other.remove();
  }
});

test("VM targets of up, status and the rest; a VM's snapshots after snapshot restore --vm", async (t) => {
  assert.deepEqual(await complete(["up", "web", ""]), ["web", "db"]);
  assert.deepEqual(await complete(["status", "d"]), ["db"]);
  assert.deepEqual(await complete(["snapshot", "save", "--vm", ""]), ["web", "db"]);
  if (spawnSync("qemu-img", ["--version"]).error) return t.skip("qemu-img is not installed");
  const overlay = join(project.dir, ".castra", "web-overlay.qcow2");
  await mkdir(join(project.dir, ".castra"), { recursive: true });
  for (const args of [
    ["create", "-q", "-f", "qcow2", overlay, "16M"],
    ["snapshot", "-c", "before-upgrade", overlay],
  ])
    assert.equal(spawnSync("qemu-img", args).status, 0);
  assert.deepEqual(await complete(["snapshot", "restore", "--vm", "web", "b"]), ["before-upgrade"]);
  assert.deepEqual(await complete(["snapshot", "restore", ""]), [], "two VMs and no --vm: whose snapshots?");
});

test("flags with descriptions for zsh and fish, choices of a flag's value, files for a path", async () => {
  assert.deepEqual(await complete(["status", "--j"], "fish"), [
    "--json\tprint a JSON document instead of the table",
  ]);
  assert.deepEqual(await complete(["status", "--j"], "zsh"), [
    "--json:print a JSON document instead of the table",
  ]);
  assert.deepEqual(await complete(["up", "--accel", ""]), ["auto", "kvm", "tcg"]);
  assert.deepEqual(await complete(["--config", ""]), [":files"]);
  assert.deepEqual(await complete(["images", "pull", ""]), ["alpine-minimal@v1"]);
});

test("nothing after ssh's VM (the remote command's words) and nothing from a broken castra.toml", async () => {
  assert.deepEqual(await complete(["ssh", "web", "ls", "-"]), []);
  assert.deepEqual(await complete(["ssh", "--", ""]), []);
  const broken = await tempProject("[[vms]]\nname = 3\n");
  try {
    assert.deepEqual(await complete(["ssh", ""], "bash", broken.dir), []);
  } finally {
    await broken.remove();
  }
});
