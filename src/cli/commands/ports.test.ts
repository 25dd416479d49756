import assert from "node:assert/strict";
import { mkdtemp, readdir, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { fakeRunningVm } from "../../../test/support/running-vm.js";
import { type CapturedIO, captureIO } from "../io.js";
import { runPorts } from "./ports.js";

let dir: string;
let io: CapturedIO;
const ctx = () => ({ io, global: { skipDiscovery: true }, signal: new AbortController().signal });
const write = (text: string) => writeFile(join(dir, "castra.toml"), text);
const vm = (name: string, forwards: string) =>
  `[[vms]]\nname = "${name}"\nmanaged_image = { name = "alpine-minimal", version = "v1" }\n${forwards}`;
const fwd = (host: number, guest: number, extra = "") =>
  `[[vms.port_forwards]]\nhost = ${host}\nguest = ${guest}\n${extra}`;

beforeEach(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "castra-ports-")));
  io = captureIO({ cwd: dir });
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("ports prints the declared forwards as an aligned table in declaration order", async () => {
  await write(
    vm("devbox", fwd(2222, 22) + fwd(8080, 80)) +
      vm("dns", fwd(5353, 53, 'protocol = "udp"\nhost_address = "127.0.0.2"\n')),
  );
  assert.equal(await runPorts({}, ctx()), 0);
  assert.equal(
    io.stdout(),
    [
      "VM      HOST            GUEST  PROTO",
      "devbox  127.0.0.1:2222  22     tcp",
      "devbox  127.0.0.1:8080  80     tcp",
      "dns     127.0.0.2:5353  53     udp",
      "",
    ].join("\n"),
  );
  assert.equal(io.stderr(), "");
});

test("duplicate host ports within and across VMs are flagged with the VMs involved; the broker takes none", async () => {
  await write(
    `${vm("a", fwd(2222, 22) + fwd(2222, 2022))}${vm("b", fwd(2222, 22) + fwd(7070, 70))}[broker]\nport = 7070\n`,
  );
  assert.equal(await runPorts({}, ctx()), 0, "conflicts are warnings here; up refuses them");
  const err = io.stderr();
  assert.match(
    err,
    /warning: host port 2222\/tcp is claimed 3 times: vm a \(127\.0\.0\.1:2222 → guest 22\), vm a \(127\.0\.0\.1:2222 → guest 2022\), vm b \(127\.0\.0\.1:2222 → guest 22\)/,
  );
  // The broker listens on a unix socket: its port is the guests', not the host's.
  assert.doesNotMatch(err, /7070/);
  assert.match(err, /castra up` refuses to start while host ports conflict/);
});

test("the same port on another protocol or another loopback address is no conflict; 0.0.0.0 overlaps all", async () => {
  await write(
    vm("a", fwd(53, 53) + fwd(53, 53, 'protocol = "udp"\n') + fwd(80, 80, 'host_address = "127.0.0.2"\n')) +
      vm(
        "b",
        fwd(80, 80) +
          fwd(443, 443, 'host_address = "0.0.0.0"\n') +
          fwd(443, 8443, 'host_address = "127.0.0.3"\n'),
      ),
  );
  await runPorts({}, ctx());
  const warnings = io
    .stderr()
    .split("\n")
    .filter((l) => l.startsWith("warning: host port"));
  assert.deepEqual(warnings, [
    "warning: host port 443/tcp is claimed 2 times: vm b (0.0.0.0:443 → guest 443), vm b (127.0.0.3:443 → guest 8443)",
  ]);
  assert.match(io.stderr(), /0\.0\.0\.0 makes this forward reachable from other machines/);
});

test("--verbose adds the project, its config file and where guests reach the broker", async () => {
  await write(`[project]\nname = "demo"\n${vm("a", fwd(2222, 22))}[broker]\nport = 7070\n`);
  await runPorts({ verbose: true }, ctx());
  assert.equal(
    io.stdout(),
    [
      "project: demo (castra.toml)",
      "broker:  guests reach it at 169.254.2.4:7070 (no host port)",
      "",
      "VM  HOST            GUEST  PROTO",
      "a   127.0.0.1:2222  22     tcp",
      "",
    ].join("\n"),
  );
});

test("without castra.toml the default project is shown as such and nothing is written", async () => {
  await runPorts({ verbose: true }, ctx());
  assert.match(io.stdout(), /default project: no castra\.toml found, nothing written/);
  assert.match(io.stdout(), /vms: {5}alpine/);
  assert.match(io.stderr(), /No port forwards: no castra\.toml here/);
  assert.deepEqual(await readdir(dir), []);
});

test("unknown keys are summarised once, with suggestions", async () => {
  await write(`${vm("a", `cpu = 2\n${fwd(22, 22, "gest = 1\n")}`)}`);
  await runPorts({}, ctx());
  const lines = io.stderr().split("\n").filter(Boolean);
  assert.deepEqual(lines, [
    "warning: 2 unknown keys in castra.toml (ignored): vms[0].cpu (did you mean `cpus`?), vms[0].port_forwards[0].gest (did you mean `guest`?)",
  ]);
});

test("a running VM's automatic SSH forward is listed with a note; a stopped one is announced with --verbose", async () => {
  await write(vm("web", fwd(8080, 80)) + vm("db", ""));
  await runPorts({ verbose: true }, ctx());
  assert.match(
    io.stderr(),
    /db: `castra up` forwards a free 127\.0\.0\.1 port to guest port 22 for `castra ssh`/,
  );
  const sleeper = await fakeRunningVm(dir, "db", {
    host: "127.0.0.1",
    port: 40222,
    user: "root",
    automatic: true,
  });
  try {
    io = captureIO({ cwd: dir });
    await runPorts({}, ctx());
  } finally {
    sleeper.kill("SIGKILL");
  }
  assert.equal(
    io.stdout(),
    [
      "VM   HOST             GUEST  PROTO  NOTE",
      "web  127.0.0.1:8080   80     tcp",
      "db   127.0.0.1:40222  22     tcp    automatic (castra ssh)",
      "",
    ].join("\n"),
  );
});
