import assert from "node:assert/strict";
import { homedir } from "node:os";
import { test } from "node:test";
import { type CastraError, DataError } from "../errors.js";
import { parseProject } from "./load.js";

const FILE = "/proj/castra.toml";
const MiB = 1024 * 1024;

const FULL = `version = "0.1.0"

[project]
name = "demo"

[[vms]]
name = "devbox"
base_image = "images/devbox.qcow2"
overlay = ".castra/devbox-overlay.qcow2"
cpus = 2
memory = "2048 MiB"
ready_pattern = "login:"

  [[vms.port_forwards]]
  host = 2222
  guest = 22
  protocol = "tcp"

[[vms]]
name = "web"
managed_image = { name = "alpine-minimal", version = "v1", profile = false }

  [[vms.port_forwards]]
  host = 8053
  guest = 53
  protocol = "udp"
  host_address = "127.0.0.2"

[broker]
port = 7070
`;

const vm = (body: string) =>
  `[[vms]]\nname = "box"\nmanaged_image = { name = "alpine-minimal", version = "v1" }\n${body}`;

/** The full error text a user would read: headline, detail and hint. */
function failure(text: string): CastraError {
  try {
    parseProject(text, FILE, "/proj");
  } catch (err) {
    assert.ok(err instanceof DataError, `expected a DataError, got ${err}`);
    assert.equal(err.exitCode, 65);
    return err;
  }
  assert.fail("expected the config to be rejected");
}

function rejects(text: string, ...patterns: RegExp[]): string {
  const err = failure(text);
  const shown = `${err.headline}\n${err.detail}\nhint: ${err.hint}`;
  for (const pattern of patterns) assert.match(shown, pattern);
  return shown;
}

test("the documented example parses into the project model", () => {
  const project = parseProject(FULL, FILE);
  assert.equal(project.name, "demo");
  assert.equal(project.version, "0.1.0");
  assert.equal(project.rootDir, "/proj");
  assert.equal(project.configPath, FILE);
  assert.equal(project.stateDir, "/proj/.castra");
  assert.equal(project.synthesized, false);
  assert.deepEqual(project.broker, { port: 7070 });
  assert.deepEqual(project.warnings, []);
  assert.deepEqual(project.vms[0], {
    name: "devbox",
    source: { kind: "path", path: "/proj/images/devbox.qcow2" },
    overlay: "/proj/.castra/devbox-overlay.qcow2",
    cpus: 2,
    memoryBytes: 2048 * MiB,
    readyPattern: "login:",
    portForwards: [{ host: 2222, guest: 22, protocol: "tcp", hostAddress: "127.0.0.1" }],
    mounts: [],
    provision: [],
  });
  assert.deepEqual(project.vms[1], {
    name: "web",
    source: { kind: "managed", name: "alpine-minimal", version: "v1", useProfile: false },
    overlay: "/proj/.castra/web-overlay.qcow2",
    cpus: undefined,
    memoryBytes: undefined,
    readyPattern: undefined,
    portForwards: [{ host: 8053, guest: 53, protocol: "udp", hostAddress: "127.0.0.2" }],
    mounts: [{ host: "/proj", guest: "/project", writable: false }],
    provision: [],
  });
});

test("optional fields take their defaults: version, project name, profile, overlay, protocol, address", () => {
  const project = parseProject(
    '[[vms]]\nname = "box"\nmanaged_image = { name = "alpine-minimal", version = "v1" }\n[[vms.port_forwards]]\nhost = 80\nguest = 8080\n',
    "/home/me/shop/castra.toml",
  );
  assert.equal(project.version, "0.1.0");
  assert.equal(project.name, "shop", "the directory names a project without [project]");
  assert.equal(project.broker, undefined);
  const [box] = project.vms;
  assert.deepEqual(box?.source, { kind: "managed", name: "alpine-minimal", version: "v1", useProfile: true });
  assert.equal(box?.overlay, "/home/me/shop/.castra/box-overlay.qcow2");
  assert.deepEqual(box?.portForwards, [{ host: 80, guest: 8080, protocol: "tcp", hostAddress: "127.0.0.1" }]);
});

test("relative paths resolve against the config file's directory; absolute and ~/ paths are kept", () => {
  const text = `[[vms]]\nname = "a"\nbase_image = "../images/a.qcow2"\noverlay = "state/a.qcow2"
[[vms]]\nname = "b"\nbase_image = "/srv/b.qcow2"\noverlay = "~/overlays/b.qcow2"\n`;
  const project = parseProject(text, "/work/proj/sub/castra.toml", "/elsewhere");
  assert.deepEqual(project.vms[0]?.source, { kind: "path", path: "/work/proj/images/a.qcow2" });
  assert.equal(project.vms[0]?.overlay, "/work/proj/sub/state/a.qcow2");
  assert.deepEqual(project.vms[1]?.source, { kind: "path", path: "/srv/b.qcow2" });
  assert.equal(project.vms[1]?.overlay, `${homedir()}/overlays/b.qcow2`);
});

test("unknown keys at every level are warnings with their path and a close spelling", () => {
  const text = `version = "0.1.0"\nextra = 1\n[project]\nname = "demo"\nowner = "me"
[[vms]]\nname = "box"\ncpu = 2\nreadyPattern = "login:"\nmanaged_image = { name = "alpine-minimal", version = "v1", profle = false }
[[vms.port_forwards]]\nhost = 2222\nguest = 22\nproto = "tcp"
[broker]\nprot = 7070\nport = 7070\n`;
  const project = parseProject(text, FILE);
  assert.deepEqual(
    project.warnings.map((w) => `${w.path}: ${w.message}`),
    [
      "extra: unknown key",
      "project.owner: unknown key",
      "vms[0].cpu: unknown key (did you mean `cpus`?)",
      "vms[0].readyPattern: unknown key (did you mean `ready_pattern`?)",
      "vms[0].managed_image.profle: unknown key (did you mean `profile`?)",
      "vms[0].port_forwards[0].proto: unknown key (did you mean `protocol`?)",
      "broker.prot: unknown key (did you mean `port`?)",
    ],
  );
  assert.ok(project.warnings.every((w) => w.kind === "unknown_key"));
  assert.equal(project.vms[0]?.cpus, undefined, "a misspelt key is ignored, not guessed");
});

test("a forward on a non-loopback address is allowed with a warning", () => {
  const project = parseProject(
    vm('[[vms.port_forwards]]\nhost = 8080\nguest = 80\nhost_address = "0.0.0.0"\n'),
    FILE,
  );
  assert.equal(project.vms[0]?.portForwards[0]?.hostAddress, "0.0.0.0");
  assert.deepEqual(project.warnings, [
    {
      path: "vms[0].port_forwards[0].host_address",
      message: "0.0.0.0 makes this forward reachable from other machines",
      kind: "notice",
    },
  ]);
});

test("TOML syntax errors name the file, line and column", () => {
  const shown = rejects(
    'version = "0.1.0"\n\n[[vms]\nname = "x"\n',
    /castra\.toml:3:\d+:/,
    /line 3, column \d+/,
    /\[\[vms\]/,
  );
  assert.doesNotMatch(shown, /Invalid TOML document/);
  rejects('[[vms]]\nname = "a"\nname = "b"\n', /castra\.toml:3:1: trying to redefine/);
  rejects("a = 99999999999999999999\n", /castra\.toml:1:5/);
  const garbled = rejects("\u0007 = 1\n", /castra\.toml:1:1:/);
  assert.ok(!garbled.includes("\u0007"), "control characters are not echoed to the terminal");
});

test("version must be a version string", () => {
  rejects(
    `version = 1\n${vm("")}`,
    /^castra\.toml: version must be a string, not the number 1/,
    /castra\.toml:1: version = 1/,
    /example: version = "0\.1\.0"/,
  );
  rejects(`version = "latest"\n${vm("")}`, /version must look like "0\.1\.0"/);
});

test("[project] must be a table with a short string name", () => {
  rejects(`project = "demo"\n${vm("")}`, /project must be a table/, /example: \[project\]/);
  rejects(`[project]\nname = 5\n${vm("")}`, /project\.name must be a string/, /castra\.toml:2: name = 5/);
  rejects(`[project]\nname = ""\n${vm("")}`, /project\.name must not be empty/);
  rejects(`[project]\nname = "${"x".repeat(65)}"\n${vm("")}`, /at most 64 characters/);
});

test("vms must be present, non-empty tables", () => {
  rejects(
    'version = "0.1.0"\n',
    /vms castra\.toml declares no VMs/,
    /example: \[\[vms\]\]/,
    /name = "devbox"/,
  );
  rejects("vms = []\n", /vms must be one or more \[\[vms\]\] tables/);
  rejects("[vms]\nname = 'box'\n", /vms must be written \[\[vms\]\] with double brackets/);
  rejects('vms = ["box"]\n', /vms\[0\] must be a table, not the string "box"/);
});

test("VM names are required, file-name safe and unique", () => {
  rejects(
    '[[vms]]\nmanaged_image = { name = "a", version = "v1" }\n',
    /vms\[0\]\.name is missing/,
    /castra\.toml:1: \[\[vms\]\]/,
    /example: name = "devbox"/,
  );
  rejects(
    vm("").replace('"box"', '"Web Server!"'),
    /"Web Server!" is not a valid VM name: use lowercase/,
    /example: name = "web-server"/,
  );
  rejects(vm("").replace('"box"', '"../x"'), /not a valid VM name/);
  const shown = rejects(
    vm("") + vm(""),
    /vms\[1\]\.name "box" is already the name of vms\[0\]/,
    /castra\.toml:5: name = "box"/,
  );
  assert.doesNotMatch(shown, /overlay/, "one mistake, one message");
});

test("a VM names exactly one of base_image and managed_image, each well formed", () => {
  rejects(
    '[[vms]]\nname = "box"\n',
    /vms\[0\] needs an image: set base_image .* or managed_image/,
    /example: managed_image = \{ name = "alpine-minimal", version = "v1" \}/,
  );
  rejects(
    vm('base_image = "a.qcow2"\n'),
    /vms\[0\]\.managed_image set only one of base_image and managed_image/,
  );
  rejects(
    '[[vms]]\nname = "box"\nbase_image = 3\n',
    /vms\[0\]\.base_image must be a string, not the number 3/,
    /base_image = "images\/devbox\.qcow2"/,
  );
  rejects('[[vms]]\nname = "box"\nbase_image = ""\n', /base_image must not be empty/);
  rejects(
    '[[vms]]\nname = "box"\nmanaged_image = "alpine-minimal"\n',
    /vms\[0\]\.managed_image must be a table/,
    /castra\.toml:3: managed_image = "alpine-minimal"/,
  );
  rejects(
    '[[vms]]\nname = "box"\nmanaged_image = { name = "alpine-minimal" }\n',
    /vms\[0\]\.managed_image\.version is missing/,
  );
  rejects(
    '[[vms]]\nname = "box"\nmanaged_image = { version = "v1" }\n',
    /vms\[0\]\.managed_image\.name is missing/,
  );
  rejects(
    '[[vms]]\nname = "box"\nmanaged_image = { name = "../etc", version = "v1" }\n',
    /managed_image\.name "\.\.\/etc" is not a catalog name/,
  );
  rejects(
    '[[vms]]\nname = "box"\nmanaged_image = { name = "a", version = "v1", profile = "no" }\n',
    /managed_image\.profile must be true or false, not the string "no"/,
  );
});

test("overlay must be a string path distinct from the base image and from other VMs' overlays", () => {
  rejects(
    vm("overlay = 1\n"),
    /vms\[0\]\.overlay must be a string/,
    /castra\.toml:4: overlay = 1/,
    /example: overlay = "\.castra\/box-overlay\.qcow2"/,
  );
  rejects(
    '[[vms]]\nname = "box"\nbase_image = "disk.qcow2"\noverlay = "./disk.qcow2"\n',
    /overlay must not be the base image itself/,
  );
  rejects(
    `${vm('overlay = "o.qcow2"\n')}${vm('overlay = "o.qcow2"\n').replace('"box"', '"two"')}`,
    /vms\[1\]\.overlay \/proj\/o\.qcow2 is already the overlay of vms\[0\]/,
  );
});

test("cpus is a whole number from 1", () => {
  assert.equal(parseProject(vm("cpus = 1\n"), FILE).vms[0]?.cpus, 1);
  rejects(
    vm("cpus = 0\n"),
    /vms\[0\]\.cpus must be between 1 and 1024, not 0/,
    /castra\.toml:4: cpus = 0/,
    /example: cpus = 2/,
  );
  rejects(vm("cpus = 1.5\n"), /cpus must be a whole number, not the number 1\.5/);
  rejects(vm('cpus = "2"\n'), /cpus must be a whole number, not the string "2"/);
});

test("memory is a size with a unit", () => {
  assert.equal(parseProject(vm('memory = "512M"\n'), FILE).vms[0]?.memoryBytes, 512 * MiB);
  rejects(
    vm("memory = 2048\n"),
    /vms\[0\]\.memory needs a unit, e\.g\. "2048 MiB"/,
    /castra\.toml:4: memory = 2048\n/,
    /example: memory = "2048 MiB"/,
  );
  rejects(vm('memory = "lots"\n'), /vms\[0\]\.memory "lots" is not a size/);
  rejects(vm("memory = true\n"), /memory must be a string, not the boolean true/);
});

test("paths must not contain control characters", () => {
  rejects(vm('overlay = "a\\u0001b"\n'), /vms\[0\]\.overlay must not contain control characters/);
  rejects(
    '[[vms]]\nname = "box"\nbase_image = """a\nb"""\n',
    /vms\[0\]\.base_image must not contain control characters/,
  );
});

test("ready_pattern is a non-empty string", () => {
  rejects(
    vm("ready_pattern = 1\n"),
    /vms\[0\]\.ready_pattern must be a string/,
    /example: ready_pattern = "login:"/,
  );
  rejects(vm('ready_pattern = ""\n'), /ready_pattern must not be empty/);
});

test("port forwards need host and guest ports in range, tcp or udp, and an IPv4 host address", () => {
  const fwd = (body: string) => vm(`[[vms.port_forwards]]\n${body}`);
  assert.equal(
    parseProject(fwd('host = 65535\nguest = 1\nprotocol = "UDP"\n'), FILE).vms[0]?.portForwards[0]?.protocol,
    "udp",
  );
  rejects(
    fwd("guest = 22\n"),
    /vms\[0\]\.port_forwards\[0\]\.host is missing/,
    /castra\.toml:4: \[\[vms\.port_forwards\]\]/,
    /example: host = 2222/,
  );
  rejects(fwd("host = 2222\n"), /port_forwards\[0\]\.guest is missing/, /example: guest = 22/);
  rejects(
    fwd("host = 0\nguest = 22\n"),
    /vms\[0\]\.port_forwards\[0\]\.host must be between 1 and 65535, not 0/,
    /castra\.toml:5: host = 0/,
  );
  rejects(fwd("host = 2222\nguest = 65536\n"), /guest must be between 1 and 65535, not 65536/);
  rejects(fwd('host = "2222"\nguest = 22\n'), /host must be a whole number, not the string "2222"/);
  rejects(
    fwd('host = 2222\nguest = 22\nprotocol = "sctp"\n'),
    /protocol must be "tcp" or "udp", not "sctp"/,
    /example: protocol = "tcp"/,
  );
  rejects(
    fwd('host = 2222\nguest = 22\nhost_address = "localhost"\n'),
    /host_address must be an IPv4 address, not "localhost"/,
    /example: host_address = "127\.0\.0\.1"/,
  );
  rejects(fwd('host = 2222\nguest = 22\nhost_address = "::1"\n'), /must be an IPv4 address/);
  rejects(
    vm('port_forwards = "2222:22"\n'),
    /port_forwards must be a list of \[\[vms\.port_forwards\]\] tables/,
  );
});

test("[broker] needs a port in range", () => {
  rejects(`${vm("")}[broker]\n`, /broker\.port is missing/, /example: port = 7070/);
  rejects(
    `${vm("")}[broker]\nport = 70000\n`,
    /broker\.port must be between 1 and 65535/,
    /castra\.toml:5: port = 70000/,
  );
  rejects(`broker = 7070\n${vm("")}`, /broker must be a table/);
});

test("every invalid field is reported at once, each with its line and an example", () => {
  const shown = rejects(
    `${vm('cpus = 0\nmemory = "many"\n')}[broker]\nport = 0\n`,
    /castra\.toml has 3 invalid fields/,
    /castra\.toml:4: vms\[0\]\.cpus/,
    /castra\.toml:5: vms\[0\]\.memory/,
    /castra\.toml:7: broker\.port/,
    /hint: fix them in castra\.toml, then check it with `castra ports`/,
  );
  assert.equal(shown.match(/example:/g)?.length, 3);
});

test("a duplicate VM name's example is a name not taken yet", () => {
  const text =
    '[[vms]]\nname = "web"\nbase_image = "a.qcow2"\n[[vms]]\nname = "web"\nbase_image = "b.qcow2"\n';
  assert.throws(
    () => parseProject(text, "/p/castra.toml"),
    (err: DataError) => {
      assert.match(err.detail ?? "", /example: name = "web-2"/);
      return true;
    },
  );
});
