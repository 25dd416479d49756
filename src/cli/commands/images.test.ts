import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chmod, mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { pathToFileURL } from "node:url";
import { castraInProcess, tempProject } from "../../../test/support/in-process.js";

/**
 * The image commands in process: a catalog whose one artifact is a local file (a file: URL, so no network)
 * with no transform (so no qemu-img), and the per-user download cache turned off.
 */
let dir: string;
let remove: () => Promise<void>;
let env: NodeJS.ProcessEnv;

beforeEach(async () => {
  ({ dir, remove } = await tempProject(
    '[[vms]]\nname = "web"\nmanaged_image = { name = "tiny", version = "v1" }\n',
  ));
  const disk = randomBytes(64 * 1024);
  const source = join(dir, "tiny-disk.raw");
  await writeFile(source, disk);
  const entry = (version: string) => ({
    id: "tiny",
    version,
    artifacts: [
      {
        kind: "root_disk",
        url: pathToFileURL(source).href,
        sha256: createHash("sha256").update(disk).digest("hex"),
        size: disk.length,
        final_name: "rootfs.raw",
      },
    ],
  });
  await writeFile(join(dir, "catalog.json"), JSON.stringify({ images: [entry("v1"), entry("v2")] }));
  env = { CASTRA_CATALOG: join(dir, "catalog.json"), CASTRA_CACHE_DIR: "off", PATH: process.env.PATH };
});
afterEach(() => remove());

const castra = (argv: string[]) => castraInProcess(argv, { cwd: dir, env });

test("images pull materialises the project's image once; the second pull is a cache hit", async () => {
  const first = await castra(["images", "pull"]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /^Verified sha256 of root disk$/m);
  assert.match(first.stderr, /^✓ tiny@v1 ready in \.castra\/images\/tiny\/v1$/m);
  assert.deepEqual(
    (await readdir(join(dir, ".castra", "images", "tiny", "v1"))).sort(),
    [".lock", "manifest.json", "rootfs.raw"].filter((n) => n !== ".lock"),
  );
  const second = await castra(["images", "pull"]);
  assert.equal(second.code, 0);
  assert.equal(second.stderr, "Cache hit: tiny@v1\n");
});

test("images pull makes .castra/ the user's alone: wider modes narrowed, said in one line", async () => {
  const logs = join(dir, ".castra", "logs");
  await mkdir(logs, { recursive: true });
  await writeFile(join(logs, "image-manager.log"), "");
  await chmod(join(dir, ".castra"), 0o755);
  await chmod(logs, 0o755);
  await chmod(join(logs, "image-manager.log"), 0o644);
  const run = await castra(["images", "pull"]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(
    run.stderr,
    /^Narrowed permissions under \.castra\/ to owner-only: \. 755→700, logs 755→700, logs\/image-manager\.log 644→600$/m,
  );
  for (const [path, mode] of [
    ["", 0o700],
    ["logs", 0o700],
    ["logs/image-manager.log", 0o600],
    ["images/tiny/v1", 0o700],
  ] as const)
    assert.equal((await stat(join(dir, ".castra", path))).mode & 0o777, mode, path);
});

test("images pull --offline may read file: URLs (they are local); an unknown image is exit 65", async () => {
  const run = await castra(["images", "pull", "tiny@v2", "--offline"]);
  assert.equal(run.code, 0, run.stderr);
  const unknown = await castra(["images", "pull", "nothing@v9"]);
  assert.equal(unknown.code, 65);
  assert.match(unknown.stderr, /^error: Unknown managed image nothing@v9$/m);
});

test("images list shows each cached file with its users, and the total", async () => {
  await castra(["images", "pull"]);
  await castra(["images", "pull", "tiny@v2"]);
  const run = await castra(["images", "list"]);
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trimEnd().split("\n");
  assert.match(lines[0] ?? "", /^IMAGE\s+FILE\s+SIZE\s+DATE\s+USED BY$/);
  assert.match(run.stdout, /^tiny@v1\s+rootfs\.raw\s+64\.0 KiB\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+web$/m);
  assert.match(run.stdout, /^tiny@v2\s+rootfs\.raw\s+64\.0 KiB\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+-$/m);
  assert.match(lines.at(-1) ?? "", /^Total: \d+\.\d KiB in 2 images$/);
  assert.equal((await castra(["images"])).stdout, run.stdout, "`castra images` alone lists too");
});

test("images verify names a damaged file with exit 65 and the command that repairs it", async () => {
  await castra(["images", "pull"]);
  const file = join(dir, ".castra", "images", "tiny", "v1", "rootfs.raw");
  await chmod(file, 0o644);
  await writeFile(file, randomBytes(64 * 1024));
  const run = await castra(["images", "verify"]);
  assert.equal(run.code, 65);
  assert.match(run.stdout, /^MISMATCH {2}tiny@v1 rootfs\.raw: /m);
  assert.match(run.stderr, /^error: .*rootfs\.raw does not match its manifest$/m);
  assert.match(
    run.stderr,
    /^hint: remove the damaged image \(rm -rf \.castra\/images\/tiny\/v1\), then run `castra images pull`$/m,
  );
});

test("images prune asks first: without a terminal it refuses (64); with --yes it removes unused images", async () => {
  await castra(["images", "pull"]);
  await castra(["images", "pull", "tiny@v2"]);
  const refused = await castra(["images", "prune"]);
  assert.equal(refused.code, 64);
  assert.match(refused.stderr, /^unused: tiny@v2 \(/m);
  assert.match(refused.stderr, /^hint: run `castra images prune --yes`/m);
  const pruned = await castra(["images", "prune", "--yes"]);
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.match(pruned.stderr, /^✓ Removed 1 image, freed /m);
  assert.deepEqual(await readdir(join(dir, ".castra", "images", "tiny")), ["v1"]);
});
