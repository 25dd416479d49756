import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, test } from "node:test";
import { CASTRA_BIN, type CliResult, runCastra } from "../support/cli.js";
import { closedPort, type FixtureServer } from "../support/http-server.js";
import {
  assertSameDisk,
  fixtureCatalog,
  type ImageFixture,
  serveImageFixture,
  writeJson,
} from "../support/image-fixtures.js";

let server: FixtureServer;
let fixtureDir: string;
let fixture: ImageFixture;
let catalogFile: string;
let project: string;

const IMAGE_DIR = join(".castra", "images", "alpine-minimal", "v1");
const vhdPath = () => `/${fixture.vhd.name}`;

before(async () => {
  ({ dir: fixtureDir, fixture, server } = await serveImageFixture("castra-e2e-images-"));
  const catalog = fixtureCatalog(fixture, server.origin);
  // A second image no VM uses, for prune.
  catalog.images.push(...fixtureCatalog(fixture, server.origin, "spare", "v0").images);
  catalogFile = writeJson(join(fixtureDir, "catalog.json"), catalog);
});
after(async () => {
  await server.close();
  await rm(fixtureDir, { recursive: true, force: true });
});
beforeEach(async () => {
  project = await mkdtemp(join(tmpdir(), "castra-e2e-project-"));
  server.requests.length = 0;
});
afterEach(async () => {
  for (const f of [fixture.vhd, fixture.kernel, fixture.initrd]) server.fault(`/${f.name}`, undefined);
  await rm(project, { recursive: true, force: true });
});

/** `castra images ...` in the test project, with the fixture catalog and no user-wide download cache. */
function castra(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  onSpawn?: Parameters<typeof runCastra>[1]["onSpawn"],
) {
  return runCastra(["images", ...args], {
    cwd: project,
    env: { CASTRA_CATALOG: catalogFile, CASTRA_CACHE_DIR: "off", ...env },
    onSpawn,
  });
}

function assertExit(result: CliResult, code: number): void {
  assert.equal(
    result.code,
    code,
    `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
  );
}

async function writeBadCatalog(artifact: Record<string, unknown>): Promise<string> {
  const catalog = fixtureCatalog(fixture, server.origin);
  Object.assign(catalog.images[0]?.artifacts[0] ?? {}, artifact);
  return writeJson(join(project, "bad-catalog.json"), catalog);
}

test("pull in an empty directory downloads, converts and reports each phase; a second pull is a cache hit", async () => {
  const first = await castra(["pull"]);
  assertExit(first, 0);
  const url = server.url(vhdPath());
  for (const line of [
    `Downloading root disk (4.0 MiB) from ${url}`,
    "Downloaded in ",
    "Verified sha256 of root disk",
    "Stripped the VHD footer",
    "Converted raw → qcow2",
    `alpine-minimal@v1 ready in ${IMAGE_DIR}`,
  ]) {
    assert.ok(first.stderr.includes(line), `missing "${line}" in:\n${first.stderr}`);
  }
  assert.match(first.stderr, /Downloaded in \d+\.\d s \([\d.]+ [KMG]?i?B\/s\)/);
  assert.equal(existsSync(join(project, "castra.toml")), false);
  const disk = join(project, IMAGE_DIR, "rootfs.qcow2");
  assertSameDisk(fixture.raw, disk);
  const manifest = JSON.parse(await readFile(join(project, IMAGE_DIR, "manifest.json"), "utf8"));
  assert.match(manifest.catalog_digest, /^[0-9a-f]{64}$/);
  assert.match(
    await readFile(join(project, ".castra", "logs", "image-manager.log"), "utf8"),
    /alpine-minimal@v1 verified/,
  );

  server.requests.length = 0;
  const second = await castra(["pull"]);
  assertExit(second, 0);
  assert.match(second.stderr, /^Cache hit: alpine-minimal@v1$/m);
  assert.equal(server.requests.length, 0);
});

test("list shows files, sizes and the total; verify passes, then names a tampered file with 65", async () => {
  const empty = await castra(["list"]);
  assertExit(empty, 0);
  assert.match(empty.stderr, /No managed images cached/);
  assertExit(await castra(["pull"]), 0);

  const list = await castra(["list"]);
  assertExit(list, 0);
  assert.match(list.stdout, /^IMAGE +FILE +SIZE +DATE +USED BY$/m);
  assert.match(
    list.stdout,
    /^alpine-minimal@v1 +initrd\.img +195\.3 KiB +\d{4}-\d\d-\d\d \d\d:\d\d +alpine$/m,
  );
  assert.match(list.stdout, /^ +rootfs\.qcow2 +[\d.]+ MiB /m);
  assert.match(list.stdout, /^Total: [\d.]+ MiB in 1 image$/m);

  const clean = await castra(["verify"]);
  assertExit(clean, 0);
  assert.match(clean.stdout, /^ok +alpine-minimal@v1 rootfs\.qcow2$/m);

  const kernel = join(project, IMAGE_DIR, "vmlinuz");
  await chmod(kernel, 0o644);
  const bytes = await readFile(kernel);
  bytes[1000] = (bytes[1000] ?? 0) ^ 0xff;
  await writeFile(kernel, bytes);
  const tampered = await castra(["verify"]);
  assertExit(tampered, 65);
  assert.match(tampered.stdout, /^MISMATCH +alpine-minimal@v1 vmlinuz: expected sha256 [0-9a-f]{64}/m);
  assert.match(tampered.stderr, /error: .*vmlinuz does not match its manifest/);
  assert.match(tampered.stderr, /hint: /);
});

test("a connection dropped mid-stream until retries run out fails with 69; the next run resumes with Range", async () => {
  server.fault(vhdPath(), { dropAfter: { bytes: 1_000_000, times: 4 } });
  const failed = await castra(["pull"]);
  assertExit(failed, 69);
  assert.match(failed.stderr, /^Retrying in 0\.5 s \(ECONNRESET\)$/m);
  assert.match(failed.stderr, /hint: .*CASTRA_MIRROR/);
  const kept = (await stat(join(project, IMAGE_DIR, "rootfs.qcow2.partial"))).size;
  assert.ok(kept >= 1_000_000);

  server.requests.length = 0;
  const resumed = await castra(["pull"]);
  assertExit(resumed, 0);
  assert.match(resumed.stderr, /Resuming download at /);
  assert.equal(server.gets(vhdPath())[0]?.range, `bytes=${kept}-`);
  assertSameDisk(fixture.raw, join(project, IMAGE_DIR, "rootfs.qcow2"));
});

test("a server that ignores Range makes the download restart cleanly", async () => {
  server.fault(vhdPath(), { dropAfter: { bytes: 1_500_000, times: 1 }, ignoreRange: true });
  const result = await castra(["pull"]);
  assertExit(result, 0);
  assert.match(result.stderr, /downloading from the start/);
  assert.deepEqual(
    server.gets(vhdPath()).map((r) => r.status),
    [200, 200],
  );
  assertSameDisk(fixture.raw, join(project, IMAGE_DIR, "rootfs.qcow2"));
});

test("wrong bytes fail with 65 naming url, expected and actual, and leave nothing behind", async () => {
  const wrong = await readFile(fixture.vhd.path);
  wrong[5000] = (wrong[5000] ?? 0) ^ 1;
  server.fault(vhdPath(), { body: wrong });
  const result = await castra(["pull"]);
  assertExit(result, 65);
  assert.match(result.stderr, new RegExp(`Checksum mismatch for ${server.url(vhdPath())}`));
  assert.ok(result.stderr.includes(`expected sha256 ${fixture.vhd.sha256}`));
  assert.match(result.stderr, /actual +sha256 [0-9a-f]{64}/);
  assert.deepEqual(await readdir(join(project, IMAGE_DIR)), []);
});

test("a Content-Length other than the catalog size fails with 65 before the body", async () => {
  server.fault(vhdPath(), { body: Buffer.from("<html><body>Sign in to continue</body></html>\n") });
  const result = await castra(["pull"]);
  assertExit(result, 65);
  assert.match(result.stderr, /Size mismatch/);
  assert.deepEqual(await readdir(join(project, IMAGE_DIR)), []);
});

test("404 fails with 69 naming the URL and status; a refused connection with 69 naming the host", async () => {
  server.fault(vhdPath(), { status: { code: 404 } });
  const missing = await castra(["pull"]);
  assertExit(missing, 69);
  assert.match(missing.stderr, /answered HTTP 404/);
  assert.ok(missing.stderr.includes(server.url(vhdPath())));
  assert.equal(server.gets(vhdPath()).length, 1);

  const port = await closedPort();
  const refused = await castra(["pull"], { CASTRA_MIRROR: `http://127.0.0.1:${port}/mirror` });
  assertExit(refused, 69);
  assert.match(refused.stderr, new RegExp(`Connection refused by 127\\.0\\.0\\.1:${port}`));
  assert.match(refused.stderr, /hint: check the network connection/);
});

test("a stalled server fails with 69 within CASTRA_STALL_TIMEOUT and keeps the .partial", async () => {
  server.fault(vhdPath(), { stallAfter: 500_000 });
  const started = Date.now();
  const result = await castra(["pull"], { CASTRA_STALL_TIMEOUT: "1" });
  assertExit(result, 69);
  assert.ok(Date.now() - started < 6000, `took ${Date.now() - started} ms`);
  assert.match(result.stderr, /Download from 127\.0\.0\.1:\d+ stalled/);
  assert.equal((await stat(join(project, IMAGE_DIR, "rootfs.qcow2.partial"))).size, 500_000);
});

test("without qemu-img on PATH, pull fails with 72 before any request", async () => {
  const result = await castra(["pull"], { PATH: fixtureDir });
  assertExit(result, 72);
  assert.match(result.stderr, /qemu-img is not installed/);
  assert.match(result.stderr, /apt-get install qemu-utils/);
  assert.equal(server.requests.length, 0);
});

test("catalog override errors fail with 65 and the JSON path, before any request", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ sha256: "1234" }, /images\[0\]\.artifacts\[0\]\.sha256: must be 64 hexadecimal digits/],
    [{ final_name: "../x" }, /images\[0\]\.artifacts\[0\]\.final_name: must be a plain file name/],
    [
      { url: "ftp://127.0.0.1/disk.vhd" },
      /images\[0\]\.artifacts\[0\]\.url: must use http, https or file, not ftp/,
    ],
  ];
  for (const [artifact, expected] of cases) {
    const file = await writeBadCatalog(artifact);
    const result = await castra(["pull"], { CASTRA_CATALOG: file });
    assertExit(result, 65);
    assert.match(result.stderr, expected);
    assert.ok(result.stderr.includes(file));
  }
  assert.equal(server.requests.length, 0);
});

test("--offline with an empty cache fails with 69 and names what is missing", async () => {
  const result = await castra(["pull", "alpine-minimal@v1", "--offline"]);
  assertExit(result, 69);
  assert.match(result.stderr, /alpine-minimal@v1 is not cached, and offline mode forbids downloading it/);
  assert.match(result.stderr, /rootfs\.qcow2 \(root disk/);
  assert.equal(server.requests.length, 0);
});

test("a corrupt manifest is rebuilt, not a crash", async () => {
  assertExit(await castra(["pull"]), 0);
  await writeFile(join(project, IMAGE_DIR, "manifest.json"), "garbage");
  const result = await castra(["pull"]);
  assertExit(result, 0);
  assert.match(result.stderr, /Rebuilding alpine-minimal@v1: manifest\.json is unreadable/);
  assert.equal(server.gets(vhdPath()).length, 2);
});

test("two pulls at once download once, one waiting for the other, and both succeed", async () => {
  server.fault(vhdPath(), { delayMs: 1500 });
  const [a, b] = await Promise.all([castra(["pull"]), castra(["pull"])]);
  assertExit(a, 0);
  assertExit(b, 0);
  assert.equal(server.gets(vhdPath()).length, 1);
  const waited = [a, b].find((r) => r.stderr.includes("Waiting for another castra (pid"));
  assert.ok(waited, `neither run waited:\n${a.stderr}\n---\n${b.stderr}`);
  assert.match(waited.stderr, /Cache hit: alpine-minimal@v1/);
});

test("Ctrl-C during a download exits 130, keeps the .partial, and the next pull resumes it", async () => {
  server.fault(vhdPath(), { stallAfter: 1_000_000 });
  const interrupted = await castra(["pull"], {}, (child) => {
    const poll = setInterval(() => {
      if (server.gets(vhdPath()).length > 0) {
        clearInterval(poll);
        setTimeout(() => child.kill("SIGINT"), 700);
      }
    }, 50);
  });
  assertExit(interrupted, 130);
  assert.match(interrupted.stderr, /Download interrupted/);
  assert.equal((await stat(join(project, IMAGE_DIR, "rootfs.qcow2.partial"))).size, 1_000_000);
  server.fault(vhdPath(), undefined);
  server.requests.length = 0;
  assertExit(await castra(["pull"]), 0);
  assert.equal(server.gets(vhdPath())[0]?.range, "bytes=1000000-");
});

test("prune removes versions no VM uses, after --yes, and says how much it freed", async () => {
  assertExit(await castra(["pull"]), 0);
  assertExit(await castra(["pull", "spare@v0"]), 0);
  const refused = await castra(["prune"]);
  assertExit(refused, 64);
  assert.match(refused.stderr, /unused: spare@v0/);
  assert.match(refused.stderr, /hint: run `castra images prune --yes`/);
  assert.ok(existsSync(join(project, ".castra", "images", "spare", "v0", "rootfs.qcow2")));

  const pruned = await castra(["prune", "--yes"]);
  assertExit(pruned, 0);
  assert.match(pruned.stderr, /Removed 1 image, freed [\d.]+ MiB/);
  assert.equal(existsSync(join(project, ".castra", "images", "spare")), false);
  assert.ok(existsSync(join(project, IMAGE_DIR, "rootfs.qcow2")));
  assert.match((await castra(["prune"])).stderr, /Nothing to prune/);
});

/** Runs `castra images pull` with `.castra/` on a tmpfs of `size`, in a private mount namespace. */
function pullOnSmallDisk(size: string): Promise<{ code: number | null; stderr: string; left: string[] }> {
  const script = [
    'mkdir -p .castra && mount -t tmpfs -o size="$1" tmpfs .castra || exit 99',
    '"$2" "$3" images pull; rc=$?',
    "ls -A .castra/images/alpine-minimal/v1",
    "exit $rc",
  ].join("\n");
  // Asynchronous: the fixture server runs in this process and must keep answering.
  const child = spawn("unshare", ["-m", "sh", "-c", script, "sh", size, process.execPath, CASTRA_BIN], {
    cwd: project,
    env: { ...process.env, NO_COLOR: "1", CASTRA_CATALOG: catalogFile, CASTRA_CACHE_DIR: "off" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) =>
    child.on("close", (code) => resolve({ code, stderr, left: stdout.split("\n").filter(Boolean) })),
  );
}

test("a full disk during the download or the conversion fails with 74 and leaves no final file", async (t) => {
  // Needs root (or CAP_SYS_ADMIN) for a tmpfs in a private mount namespace; elsewhere there is nothing to test.
  const probe = spawnSync("unshare", ["-m", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$0"', project]);
  if (probe.status !== 0) return t.skip("cannot mount a private tmpfs here (needs root)");
  const download = await pullOnSmallDisk("3m");
  assert.equal(download.code, 74, download.stderr);
  assert.match(download.stderr, /no space left on device/);
  assert.deepEqual(download.left, ["rootfs.qcow2.partial"]);

  const conversion = await pullOnSmallDisk("5500k");
  assert.equal(conversion.code, 74, conversion.stderr);
  assert.match(conversion.stderr, /no space left on device/i);
  assert.ok(
    !conversion.left.some((n) => ["rootfs.qcow2", "manifest.json", "vmlinuz"].includes(n)),
    conversion.left.join(" "),
  );
});
