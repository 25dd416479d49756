import assert from "node:assert/strict";
import { test } from "node:test";
import { type CastraError, DataError } from "../errors.js";
import { parseProject } from "./load.js";

// [[vms.mounts]] and [[vms.provision]] as castra.toml gives them: defaults, validation, messages.
const FILE = "/proj/castra.toml";
const managed = (body = "") =>
  `[[vms]]\nname = "box"\nmanaged_image = { name = "alpine-minimal", version = "v1" }\n${body}`;
const byo = (body = "") => `[[vms]]\nname = "box"\nbase_image = "box.qcow2"\n${body}`;

function vm(text: string) {
  const [first] = parseProject(text, FILE).vms;
  assert.ok(first);
  return first;
}

function rejected(text: string): string {
  try {
    parseProject(text, FILE);
  } catch (err) {
    assert.ok(err instanceof DataError, `expected a DataError, got ${err}`);
    const e = err as CastraError;
    return `${e.headline}\n${e.detail}`;
  }
  assert.fail("expected the config to be rejected");
}

test("a managed VM without mounts gets the project read-only at /project; a bring-your-own VM gets none", () => {
  assert.deepEqual(vm(managed()).mounts, [{ host: "/proj", guest: "/project", writable: false }]);
  assert.deepEqual(vm(byo()).mounts, []);
  assert.deepEqual(vm(managed("mounts = []\n")).mounts, [], "mounts = [] turns mounting off");
});

test("mounts take host (relative to castra.toml), guest and writable, with defaults for each", () => {
  const text = byo(
    '[[vms.mounts]]\n[[vms.mounts]]\nhost = "src"\nguest = "/srv/code/"\nwritable = true\n[[vms.mounts]]\nhost = "/data"\nguest = "/mnt//data"\n',
  );
  assert.deepEqual(vm(text).mounts, [
    { host: "/proj", guest: "/project", writable: false },
    { host: "/proj/src", guest: "/srv/code", writable: true },
    { host: "/data", guest: "/mnt/data", writable: false },
  ]);
});

test("a guest path must be absolute, not /, without . or ..; two mounts on one guest path are refused", () => {
  const mount = (guest: string) => byo(`[[vms.mounts]]\nguest = ${JSON.stringify(guest)}\n`);
  assert.match(
    rejected(mount("project")),
    /vms\[0\]\.mounts\[0\]\.guest must be an absolute path, not "project"/,
  );
  assert.match(rejected(mount("/")), /mounts\[0\]\.guest must not be \/ \(the guest's root\)/);
  assert.match(rejected(mount("//")), /must not be \//);
  assert.match(rejected(mount("/a/../etc")), /must not contain "\." or "\.\."/);
  assert.match(rejected(mount("/a\nb")), /must not contain control characters/);
  const twice = byo('[[vms.mounts]]\nhost = "a"\n[[vms.mounts]]\nhost = "b"\nguest = "/project/"\n');
  assert.match(
    rejected(twice),
    /mounts\[1\]\.guest \/project is already the mount point of vms\[0\]\.mounts\[0\]/,
  );
});

test("mounts must be a list of tables with a boolean writable and a path host", () => {
  assert.match(
    rejected(byo('mounts = "."\n')),
    /vms\[0\]\.mounts must be a list of \[\[vms\.mounts\]\] tables/,
  );
  assert.match(
    rejected(byo("[[vms.mounts]]\nwritable = 1\n")),
    /writable must be true or false, not the number 1/,
  );
  assert.match(rejected(byo("[[vms.mounts]]\nhost = 3\n")), /host must be a string/);
  const many = byo(`mounts = [${Array.from({ length: 17 }, (_, i) => `{ guest = "/m${i}" }`).join(", ")}]\n`);
  assert.match(rejected(many), /has 17 mounts; at most 16 are allowed/);
});

test("provision steps keep their order; when defaults to once; scripts resolve against castra.toml", () => {
  const text = managed(
    '[[vms.provision]]\nrun = "apk add git"\n[[vms.provision]]\nscript = "scripts/setup.sh"\nwhen = "always"\n[[vms.provision]]\nrun = """\necho one\necho two\n"""\n',
  );
  assert.deepEqual(vm(text).provision, [
    { kind: "run", command: "apk add git", when: "once" },
    { kind: "script", path: "/proj/scripts/setup.sh", when: "always" },
    { kind: "run", command: "echo one\necho two\n", when: "once" },
  ]);
  assert.deepEqual(vm(managed()).provision, []);
});

test("a provision step needs exactly one of run and script, a known when, and SSH", () => {
  const step = (body: string) => managed(`[[vms.provision]]\n${body}\n`);
  assert.match(
    rejected(step('run = "a"\nscript = "b.sh"')),
    /vms\[0\]\.provision\[0\] set only one of run and script/,
  );
  assert.match(rejected(step('when = "once"')), /provision\[0\]\.run is missing/);
  assert.match(rejected(step('run = ""')), /provision\[0\]\.run must not be empty/);
  assert.match(rejected(step('run = "a"\nwhen = "boot"')), /when must be "once" or "always", not "boot"/);
  assert.match(rejected(step('run = "a\\u0000b"')), /must not contain NUL characters/);
  assert.match(
    rejected(managed('ssh = false\n[[vms.provision]]\nrun = "a"\n')),
    /provision runs over SSH, and this VM sets ssh = false/,
  );
});

test("unknown keys in mounts and provision steps are warnings with a close spelling", () => {
  const project = parseProject(
    managed('[[vms.mounts]]\nwriteable = true\n[[vms.provision]]\nrun = "a"\nwhem = "once"\n'),
    FILE,
  );
  assert.deepEqual(
    project.warnings.map((w) => `${w.path}: ${w.message}`),
    [
      "vms[0].mounts[0].writeable: unknown key (did you mean `writable`?)",
      "vms[0].provision[0].whem: unknown key (did you mean `when`?)",
    ],
  );
});
