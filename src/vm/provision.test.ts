import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { projectAt } from "../../test/support/project.js";
import type { Project, ProvisionStep, VmConfig } from "../config/model.js";
import type { GuestSession } from "./guest-session.js";
import { planProvisioning, runProvisionStep } from "./provision.js";
import type { VmRunRecord } from "./state.js";

// Provisioning steps through a stand-in `ssh` that runs the remote command line in a local sh, with stand-in
// `id` (a non-root login user) and `doas`: the guest side of castra's scripts runs for real, without a VM.

let dir: string;
let project: Project;
let bin: string;
const argvLog = () => join(dir, "ssh-argv");

before(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "castra-provision-")));
  bin = join(dir, "bin");
  await mkdir(bin);
  await mkdir(join(dir, "guest-tmp"));
  const script = (name: string, body: string) =>
    writeFile(join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  // ssh: records the remote command line (NUL-terminated), fails like an unreachable server while refusals are left, else runs
  // the last word as sh would, with a private TMPDIR standing in for the guest's /tmp.
  await script(
    "ssh",
    `for last in "$@"; do :; done; printf '%s\\0' "$last" >>"${argvLog()}"
left=$(cat "${dir}/refusals" 2>/dev/null || echo 0)
if [ "$left" -gt 0 ]; then echo $((left - 1)) >"${dir}/refusals"; echo "ssh: connect to host 127.0.0.1 port 2222: Connection refused" >&2; exit 255; fi
PATH="$(dirname "$0")$(cat "$(dirname "$0")/../guest-path-$(basename "$(dirname "$0")")" 2>/dev/null)" exec /bin/sh -c "$last"`,
  );
  await script("id", 'case "$1" in -u) echo 1000 ;; -g) echo 1001 ;; *) echo "uid=1000(alpine)" ;; esac');
  await script("doas", '[ "$1" = -n ] && shift; exec "$@"');
  // The guest's mktemp makes /tmp/castra-provision.XXXXXX: point it at this test's directory instead.
  await script("mktemp", `exec /usr/bin/mktemp "${dir}/guest-tmp/castra-provision.XXXXXX"`);
  // The guest's PATH: these stand-ins first, then the host's tools.
  await writeFile(join(dir, "guest-path-bin"), ":/usr/bin:/bin");
  project = projectAt(dir, { name: "demo" });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function session(steps: ProvisionStep[], connectUntil?: number): GuestSession {
  const vm: VmConfig = {
    name: "web",
    source: { kind: "path", path: join(dir, "base.qcow2") },
    overlay: join(dir, ".castra", "web-overlay.qcow2"),
    portForwards: [],
    provision: steps,
  };
  const record = {
    startedAt: new Date().toISOString(),
    ssh: { host: "127.0.0.1", port: 2222, user: "alpine", automatic: true },
  } as VmRunRecord;
  return { project, vm, record, env: { PATH: `${bin}:/usr/bin:/bin` }, connectUntil };
}

async function runStep(steps: ProvisionStep[], index = 0, connectUntil?: number) {
  const s = session(steps, connectUntil);
  const plan = await planProvisioning(project, s.vm);
  const lines: string[] = [];
  const planned = plan.steps[index];
  assert.ok(planned);
  const result = await runProvisionStep(s, planned, (line) => lines.push(line));
  return { ...result, lines };
}

test("a run step is the user's shell command, run as root through doas with stdin closed; its status is kept", async () => {
  const command = 'echo "args $1 $2"; read -r line || echo "no input"; echo to stderr >&2; exit 3';
  const result = await runStep([{ kind: "run", command, when: "once" }]);
  assert.equal(result.code, 3);
  assert.deepEqual(result.lines, ["args  ", "no input", "to stderr"]);
  const log = await readFile(join(dir, ".castra", "logs", "web-provision.log"), "utf8");
  assert.match(
    log,
    /^\S+Z step 1\/1 run: echo "args \$1 \$2"; read -r line \|\| echo "no input"; echo to…$/m,
  );
  assert.match(log, /^\S+Z {3}to stderr$/m);
  assert.match(log, /^\S+Z step 1\/1 exit 3 after \d+\.\d s$/m);
});

test("neither a command nor a script ever appears on ssh's command line: it travels on stdin", async () => {
  await rm(argvLog(), { force: true });
  const marker = join(dir, "PWNED");
  await writeFile(join(dir, "setup.sh"), `#!/bin/sh\necho 'quoted $(touch ${marker})' "$0"\n`);
  await writeFile(join(dir, "other $(touch x).sh"), "echo other\n");
  const result = await runStep([{ kind: "script", path: join(dir, "setup.sh"), when: "always" }]);
  assert.equal(result.code, 0, result.lines.join("\n"));
  assert.equal(result.lines.length, 1);
  const copied = new RegExp(`^quoted \\$\\(touch ${marker}\\) ${dir}/guest-tmp/castra-provision\\.\\w+$`);
  assert.match(result.lines[0] ?? "", copied);
  await assert.rejects(readFile(marker), "the script's text was data, never code on a command line");
  const other = await runStep([{ kind: "script", path: join(dir, "other $(touch x).sh"), when: "once" }]);
  assert.deepEqual(other.lines, ["other"]);
  const [first, second] = (await readFile(argvLog(), "utf8")).split("\0");
  assert.equal(first, second, "the command line is castra's constant, whatever the script");
  assert.doesNotMatch(first ?? "", /touch|setup\.sh/);
  assert.deepEqual(await readdir(join(dir, "guest-tmp")), [], "the copied script is removed after it ran");
});

test("a script without #! is run by sh; its exit status is the step's", async () => {
  await writeFile(join(dir, "plain.sh"), "echo plain; exit 7\n");
  const result = await runStep([{ kind: "script", path: join(dir, "plain.sh"), when: "once" }]);
  assert.deepEqual([result.code, result.lines], [7, ["plain"]]);
});

test("an SSH server that does not answer yet is tried again until connectUntil; then ssh's 255 is the result", async () => {
  await writeFile(join(dir, "refusals"), "2");
  const step: ProvisionStep = { kind: "run", command: "echo finally", when: "once" };
  const waited = await runStep([step], 0, Date.now() + 30_000);
  assert.deepEqual([waited.code, waited.lines.at(-1)], [0, "finally"]);
  await writeFile(join(dir, "refusals"), "9");
  const refused = await runStep([step]);
  assert.equal(refused.code, 255);
  assert.match(refused.lines.join("\n"), /Connection refused/);
  await rm(join(dir, "refusals"));
});

test("a once step is identified by its text or its script's bytes: a change is a new digest", async () => {
  const s = session([
    { kind: "run", command: "apk add git", when: "once" },
    { kind: "run", command: "apk add git ", when: "once" },
    { kind: "script", path: join(dir, "plain.sh"), when: "once" },
  ]);
  const before = await planProvisioning(project, s.vm);
  await writeFile(join(dir, "plain.sh"), "echo changed\n");
  const afterChange = await planProvisioning(project, s.vm);
  const [a, b, script] = before.steps.map((p) => p.digest);
  assert.notEqual(a, b);
  assert.notEqual(script, afterChange.steps[2]?.digest);
  assert.equal(a, afterChange.steps[0]?.digest);
  assert.deepEqual(before.record.done, {});
});

test("a guest whose login user is not root and that has neither doas nor sudo gets exit 126 with the reason", async () => {
  const bare = join(dir, "bare");
  await mkdir(bare, { recursive: true });
  for (const tool of ["ssh", "id"]) {
    await writeFile(join(bare, tool), await readFile(join(bin, tool)));
    await chmod(join(bare, tool), 0o755);
  }
  const s = { ...session([{ kind: "run", command: "true", when: "once" }]), env: { PATH: `${bare}:/bin` } };
  const plan = await planProvisioning(project, s.vm);
  const lines: string[] = [];
  const result = await runProvisionStep(s, plan.steps[0] as NonNullable<(typeof plan.steps)[0]>, (l) =>
    lines.push(l),
  );
  assert.equal(result.code, 126);
  assert.deepEqual(lines, ["castra: the login user is not root and the guest has neither doas nor sudo"]);
});
