import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadProjectFile } from "../../src/config/load.js";
import { type CliResult, runCastra } from "../support/cli.js";

let root: string;
let count = 0;

before(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), "castra-cli-")));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh, empty project directory. */
async function project(): Promise<string> {
  count += 1;
  const dir = join(root, `p${count}`);
  await mkdir(dir);
  return dir;
}

/** Runs castra and checks what every run must honour: no stack trace on stderr. */
async function castra(args: string[], cwd: string): Promise<CliResult> {
  const result = await runCastra(args, { cwd, env: { CASTRA_DEBUG: "" } });
  assert.doesNotMatch(
    result.stderr,
    /\n\s+at /,
    `stack trace in stderr of castra ${args.join(" ")}:\n${result.stderr}`,
  );
  return result;
}

test("--version prints the semver and, from a checkout, the git sha", async () => {
  const result = await castra(["--version"], root);
  assert.equal(result.code, 0);
  assert.match(result.stdout.trim(), /^\d+\.\d+\.\d+(-[\w.]+)?( \([0-9a-f]{7,}\))?$/);
  assert.match(result.stdout, /\([0-9a-f]{7,}\)/, "built from this checkout, the sha is shown");
});

test("--help and per-command help exit 0 and list the commands and flags", async () => {
  const help = await castra(["--help"], root);
  assert.equal(help.code, 0);
  for (const word of ["init", "ports", "--config", "--skip-discovery", "--no-color"])
    assert.ok(help.stdout.includes(word), word);
  const init = await castra(["init", "--help"], root);
  assert.equal(init.code, 0);
  assert.match(init.stdout, /--force/);
  assert.match(init.stdout, /--project-name/);
  const ports = await castra(["ports", "--help"], root);
  assert.equal(ports.code, 0);
  assert.match(ports.stdout, /--verbose/);
});

test("no arguments print the help on stderr and exit 64", async () => {
  const result = await castra([], root);
  assert.equal(result.code, 64);
  assert.match(result.stderr, /Usage: castra/);
  assert.equal(result.stdout, "");
});

test("an unknown command exits 64, with a suggestion when one is close", async () => {
  const upp = await castra(["upp"], root);
  assert.equal(upp.code, 64);
  assert.match(upp.stderr, /error: unknown command 'upp'/);
  assert.match(upp.stderr, /hint: did you mean `castra up`\?/);
  const pul = await castra(["images", "pul"], root);
  assert.equal(pul.code, 64);
  assert.match(pul.stderr, /error: unknown command 'pul'\nhint: did you mean `castra images pull`\?/);
  const prots = await castra(["prots"], root);
  assert.equal(prots.code, 64);
  assert.match(prots.stderr, /did you mean `castra ports`\?/);
});

test("an unknown flag exits 64 and names it", async () => {
  const result = await castra(["ports", "--verbsoe"], root);
  assert.equal(result.code, 64);
  assert.match(result.stderr, /unknown option '--verbsoe'/);
  assert.match(result.stderr, /did you mean `--verbose`\?/);
});

test("an invalid castra.toml exits 65 naming the file, the field, its line and a valid example", async () => {
  const dir = await project();
  await writeFile(
    join(dir, "castra.toml"),
    '[[vms]]\nname = "box"\nmanaged_image = { name = "alpine-minimal", version = "v1" }\nmemory = 2048\n',
  );
  const result = await castra(["ports"], dir);
  assert.equal(result.code, 65);
  assert.match(result.stderr, /^error: castra\.toml: vms\[0\]\.memory needs a unit/);
  assert.match(result.stderr, /castra\.toml:4: memory = 2048/);
  assert.match(result.stderr, /example: memory = "2048 MiB"/);
  assert.match(result.stderr, /hint: fix vms\[0\]\.memory in castra\.toml/);
});

test("a TOML syntax error exits 65 with the line and column", async () => {
  const dir = await project();
  await writeFile(join(dir, "castra.toml"), 'version = "0.1.0"\n[[vms]\n');
  const result = await castra(["ports"], dir);
  assert.equal(result.code, 65);
  assert.match(result.stderr, /^error: castra\.toml:2:\d+: /);
  assert.match(result.stderr, /line 2, column \d+/);
});

test("--config naming a missing file exits 66 with a hint to create it", async () => {
  const dir = await project();
  const result = await castra(["--config", "missing.toml", "ports"], dir);
  assert.equal(result.code, 66);
  assert.match(result.stderr, /error: Config file not found: .*missing\.toml/);
  assert.match(result.stderr, /hint: .*castra init/);
});

test("init twice exits 73 the second time and leaves the first file alone", async () => {
  const dir = await project();
  const first = await castra(["init", "--project-name", "twice"], dir);
  assert.equal(first.code, 0);
  assert.match(first.stderr, /Wrote castra\.toml/);
  assert.match(first.stderr, /next: castra up/);
  const second = await castra(["init"], dir);
  assert.equal(second.code, 73);
  assert.match(second.stderr, /error: castra\.toml already exists/);
  assert.match(second.stderr, /hint: castra init --force/);
  assert.equal((await loadProjectFile(join(dir, "castra.toml"))).name, "twice");
  assert.equal((await castra(["init", "--force"], dir)).code, 0);
});

test("init then ports: the starter declares no fixed port (SSH is automatic), parses cleanly, also from below", async () => {
  const dir = await project();
  assert.equal((await castra(["init"], dir)).code, 0);
  assert.deepEqual((await readdir(dir)).sort(), [".castra", "castra.toml"]);
  const expected = "";
  const ports = await castra(["ports"], dir);
  assert.equal(ports.code, 0);
  assert.equal(ports.stdout, expected);
  assert.match(ports.stderr, /^No port forwards declared/);
  assert.doesNotMatch(ports.stderr, /warning/, "the starter file parses with zero warnings");

  const sub = join(dir, "src", "app");
  await mkdir(sub, { recursive: true });
  const nested = await castra(["ports"], sub);
  assert.equal(nested.stdout, expected, "discovery finds castra.toml in a parent directory");
  const skipped = await castra(["--skip-discovery", "ports"], sub);
  assert.equal(skipped.code, 0);
  assert.equal(skipped.stdout, "");
  assert.match(skipped.stderr, /no castra\.toml here/);
});

test("ports in an empty directory uses the default project and writes nothing", async () => {
  const dir = await project();
  const result = await castra(["ports", "--verbose"], dir);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /default project: no castra\.toml found, nothing written/);
  assert.deepEqual(await readdir(dir), []);
});

test("ports exits 0 but warns about conflicting host ports, naming the VMs", async () => {
  const dir = await project();
  const vm = (name: string) =>
    `[[vms]]\nname = "${name}"\nmanaged_image = { name = "alpine-minimal", version = "v1" }\n[[vms.port_forwards]]\nhost = 2222\nguest = 22\n`;
  await writeFile(join(dir, "castra.toml"), vm("one") + vm("two"));
  const result = await castra(["ports"], dir);
  assert.equal(result.code, 0);
  assert.match(result.stderr, /warning: host port 2222\/tcp is claimed 2 times: vm one .*, vm two /);
});
