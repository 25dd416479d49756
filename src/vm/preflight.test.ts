import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { projectAt } from "../../test/support/project.js";
import type { Project, VmConfig } from "../config/model.js";
import { CastraError, ExitCode } from "../errors.js";
import { type PreflightInput, preflight } from "./preflight.js";

const dir = await mkdtemp(join(tmpdir(), "castra-preflight-"));
after(() => rm(dir, { recursive: true, force: true }));

/** PATHs holding executable stand-ins for the host tools (preflight only looks for them). */
async function fakeTools(name: string, tools: string[]): Promise<string> {
  const bin = join(dir, name);
  await mkdir(bin);
  for (const tool of tools) {
    await writeFile(join(bin, tool), "#!/bin/sh\nexit 0\n");
    await chmod(join(bin, tool), 0o755);
  }
  return bin;
}
const fakeBin = await fakeTools("bin", ["qemu-system-x86_64", "qemu-img", "perl"]);
const qemuOnly = await fakeTools("qemu-only", ["qemu-system-x86_64", "qemu-img"]);
const base = join(dir, "base.qcow2");
await writeFile(base, "not really an image: preflight only checks it exists");

const roomy = { cpus: 8, totalMemoryBytes: 16 * 1024 ** 3, availableMemoryBytes: 8 * 1024 ** 3 };
const GiB = 1024 ** 3;

function input(vm: Partial<VmConfig>, extra: Partial<PreflightInput> = {}): PreflightInput {
  const full: VmConfig = {
    name: "devbox",
    source: { kind: "path", path: base },
    overlay: join(dir, "o.qcow2"),
    portForwards: [],
    ...vm,
  };
  const project: Project = projectAt(dir, { vms: [full] });
  return {
    project,
    vms: [
      {
        vm: full,
        base: { path: full.source.kind === "path" ? full.source.path : base },
        resources: { cpus: full.cpus ?? 1, memoryBytes: full.memoryBytes ?? GiB },
      },
    ],
    force: false,
    env: { PATH: fakeBin },
    capacity: roomy,
    ...extra,
  };
}

async function listen(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as { port: number }).port };
}

test("a healthy host passes and yields the tools' paths", async () => {
  const result = await preflight(input({}));
  assert.equal(result.tools.qemuImg, join(fakeBin, "qemu-img"));
  assert.equal(result.tools.perl, join(fakeBin, "perl"));
  assert.deepEqual(result.warnings, []);
});

test("missing QEMU tools: exit 72 naming both, with install lines for Debian, Fedora and macOS", async () => {
  const perlOnly = await fakeTools("perl-only", ["perl"]);
  const err = await preflight(input({}, { env: { PATH: perlOnly } })).catch((e: unknown) => e);
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, ExitCode.toolMissing);
  assert.match(err.headline, /qemu-system-x86_64 and qemu-img are not installed/);
  assert.match(err.detail ?? "", /apt-get install qemu-system-x86 qemu-utils/);
  assert.match(err.detail ?? "", /dnf install qemu-system-x86 qemu-img/);
  assert.match(err.detail ?? "", /brew install qemu/);
});

test("perl is required only for a VM on castra's network (metadata) or with a broker: exit 72 with install lines", async () => {
  const err = await preflight(input({}, { env: { PATH: qemuOnly } })).catch((e: unknown) => e);
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, ExitCode.toolMissing);
  assert.equal(err.headline, "perl is not installed");
  assert.match(err.detail ?? "", /run perl for each guest connection of devbox/);
  assert.match(err.detail ?? "", /apt-get install perl-base/);
  assert.match(err.detail ?? "", /dnf install perl-interpreter/);
  assert.match(err.hint ?? "", /perl -v/);
  const elsewhere = input({ subnet: "10.0.2.0/24" }, { env: { PATH: qemuOnly } });
  assert.equal((await preflight(elsewhere)).tools.perl, undefined);
  const brokered = { ...elsewhere, project: { ...elsewhere.project, broker: { port: 7070 } } };
  const withBroker = await preflight(brokered).catch((e: unknown) => e);
  assert.ok(withBroker instanceof CastraError && withBroker.exitCode === ExitCode.toolMissing);
});

test("a missing base image is exit 66 and --force does not skip it", async () => {
  const missing = join(dir, "nope.qcow2");
  const err = await preflight(input({ source: { kind: "path", path: missing } }, { force: true })).catch(
    (e: unknown) => e,
  );
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, ExitCode.noInput);
  assert.match(err.headline, /nope\.qcow2 does not exist/);
});

test("a host port in use names the process holding it", async () => {
  const { server, port } = await listen();
  try {
    const forward = { host: port, guest: 22, protocol: "tcp" as const, hostAddress: "127.0.0.1" };
    const err = await preflight(input({ portForwards: [forward] })).catch((e: unknown) => e);
    assert.ok(err instanceof CastraError);
    assert.equal(err.exitCode, ExitCode.software);
    assert.match(
      err.headline,
      new RegExp(`127\\.0\\.0\\.1:${port}/tcp .* is already in use by .*\\(pid ${process.pid}\\)`),
    );
    assert.match(err.hint ?? "", new RegExp(`kill ${process.pid}`));
  } finally {
    server.close();
  }
});

test("too many CPUs and too much memory fail together; --force turns them into warnings", async () => {
  const greedy = input({ cpus: 16, memoryBytes: 12 * GiB });
  const err = await preflight(greedy).catch((e: unknown) => e);
  assert.ok(err instanceof CastraError);
  assert.match(err.headline, /2 problems/);
  assert.match(err.detail ?? "", /asks for 16 CPUs; this host has 8/);
  assert.match(err.detail ?? "", /asks for 12\.0 GiB of memory; 8\.0 GiB of 16\.0 GiB is available/);
  assert.match(err.hint ?? "", /--force/);
  const forced = await preflight({ ...greedy, force: true });
  assert.equal(forced.warnings.length, 2);
});

test("missing tools and a missing image are reported together; the exit code is the tools' 72", async () => {
  const err = await preflight(
    input({ source: { kind: "path", path: join(dir, "gone.qcow2") } }, { env: { PATH: "" } }),
  ).catch((e: unknown) => e);
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, ExitCode.toolMissing);
  assert.match(err.detail ?? "", /gone\.qcow2 does not exist/);
});
