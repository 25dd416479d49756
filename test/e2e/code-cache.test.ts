import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { CASTRA_BIN, runCastra } from "../support/cli.js";

const REPO = join(import.meta.dirname, "..", "..");

// The installed command runs the bundle from V8's code cache in the private runtime directory
// (docs/architecture.md, "Start-up"). These runs have a runtime directory of their own.

let root: string;
let count = 0;

before(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), "castra-code-cache-")));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * A fresh XDG_RUNTIME_DIR (0700, as the login manager makes it) with castra's runtime directory in it, as the first
 * `castra up` leaves it, and where castra keeps its code cache.
 */
async function runtime(): Promise<{ env: NodeJS.ProcessEnv; cacheDir: string }> {
  count += 1;
  const dir = join(root, `run${count}`);
  await mkdir(join(dir, "castra"), { recursive: true, mode: 0o700 });
  return { env: { XDG_RUNTIME_DIR: dir }, cacheDir: join(dir, "castra", "code-cache") };
}

const VERSION = JSON.parse(await readFile(join(REPO, "package.json"), "utf8")).version as string;

async function version(env: NodeJS.ProcessEnv): Promise<string> {
  const result = await runCastra(["--version"], { cwd: root, env });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  return result.stdout;
}

async function onlyCacheFile(cacheDir: string): Promise<string> {
  const names = await readdir(cacheDir);
  assert.equal(names.length, 1, `one cache file, no leftovers: ${names.join(", ")}`);
  // Named by the hash of the bundle the run executed, as its last line says.
  const bundle = await readFile(join(CASTRA_BIN, "..", "cli.cjs"), "utf8");
  const [body, id] = bundle.split(/\/\/# castra-bundle ([0-9a-f]{16})\n$/) as [string, string];
  assert.equal(id, createHash("sha256").update(body).digest("hex").slice(0, 16));
  assert.equal(names[0], `cli-${id}-node${process.versions.node}-${process.arch}.v8`);
  return join(cacheDir, names[0] as string);
}

test("the first run saves the code cache privately; the next runs use it as it is", async () => {
  assert.ok(CASTRA_BIN.endsWith("castra.cjs"), "run `npm run build` first");
  const { env, cacheDir } = await runtime();
  const printed = await version(env);
  assert.ok(printed.startsWith(`${VERSION}`), printed);
  const file = await onlyCacheFile(cacheDir);
  assert.equal((await stat(cacheDir)).mode & 0o777, 0o700);
  assert.equal((await stat(join(cacheDir, ".."))).mode & 0o777, 0o700);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.ok((await stat(file)).size > 10_000, "the cache holds compiled code");

  const before = await stat(file);
  assert.equal(await version(env), printed);
  const status = await runCastra(["status"], { cwd: root, env });
  assert.equal(status.code, 0, status.stderr);
  const afterRuns = await stat(file);
  // V8 accepted the cache: a refused one is written again.
  assert.equal(afterRuns.ino, before.ino);
  assert.equal(afterRuns.mtimeMs, before.mtimeMs);
});

test("a damaged cache is refused by V8 and replaced; the command runs as usual", async () => {
  const { env, cacheDir } = await runtime();
  const printed = await version(env);
  const file = await onlyCacheFile(cacheDir);
  const good = await readFile(file);
  for (const damaged of [Buffer.from("not bytecode at all"), good.subarray(0, good.length >> 1)]) {
    await writeFile(file, damaged);
    assert.equal(await version(env), printed);
    const replaced = await readFile(file);
    assert.ok(!replaced.equals(damaged), "the damaged cache was replaced");
    assert.ok(replaced.length > 10_000);
    await onlyCacheFile(cacheDir);
  }
});

test("a link planted at the cache's name is neither read nor written through", async () => {
  const { env, cacheDir } = await runtime();
  const printed = await version(env);
  const file = await onlyCacheFile(cacheDir);
  const victim = join(root, `victim${count}`);
  await writeFile(victim, "the user's own file\n");
  await rm(file);
  await symlink(victim, file);
  assert.equal(await version(env), printed);
  assert.equal(await version(env), printed);
  assert.equal(await readFile(victim, "utf8"), "the user's own file\n");
  assert.ok((await lstat(file)).isSymbolicLink());
  await onlyCacheFile(cacheDir);
});

test("no cache where castra's runtime directory is missing or shared, or with CASTRA_CODE_CACHE=off", async () => {
  const missing = join(root, `missing${count}`);
  await mkdir(missing, { mode: 0o700 });
  // `sudo -E castra status` must not make the user's runtime directory root's.
  assert.ok((await version({ XDG_RUNTIME_DIR: missing })).startsWith(VERSION));
  assert.deepEqual(await readdir(missing), []);

  const shared = await runtime();
  await chmod(join(shared.cacheDir, ".."), 0o770);
  assert.ok((await version(shared.env)).startsWith(VERSION));
  await assert.rejects(readdir(shared.cacheDir), { code: "ENOENT" });

  const off = await runtime();
  assert.ok((await version({ ...off.env, CASTRA_CODE_CACHE: "off" })).startsWith(VERSION));
  await assert.rejects(readdir(off.cacheDir), { code: "ENOENT" });
});

test("exit codes and error output are the CLI's, with and without a cache", async () => {
  const { env } = await runtime();
  for (let run = 0; run < 2; run++) {
    const result = await runCastra(["no-such-command"], { cwd: root, env });
    assert.equal(result.code, 64);
    assert.match(result.stderr, /no-such-command/);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  }
});
