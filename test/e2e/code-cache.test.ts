import assert from "node:assert/strict";
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

/** A fresh XDG_RUNTIME_DIR (0700, as the login manager makes it) and where castra keeps its code cache. */
async function runtime(): Promise<{ env: NodeJS.ProcessEnv; cacheDir: string }> {
  count += 1;
  const dir = join(root, `run${count}`);
  await mkdir(dir, { mode: 0o700 });
  return { env: { XDG_RUNTIME_DIR: dir }, cacheDir: join(dir, "castra", "code-cache") };
}

async function version(env: NodeJS.ProcessEnv): Promise<string> {
  const result = await runCastra(["--version"], { cwd: root, env });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  return result.stdout;
}

async function onlyCacheFile(cacheDir: string): Promise<string> {
  const names = await readdir(cacheDir);
  assert.equal(names.length, 1, `one cache file, no leftovers: ${names.join(", ")}`);
  assert.match(names[0] as string, /^cli-[0-9a-f]{16}-node\d+\.\d+\.\d+-\w+\.v8$/);
  return join(cacheDir, names[0] as string);
}

test("the first run saves the code cache privately; the next runs use it as it is", async () => {
  assert.ok(CASTRA_BIN.endsWith("castra.cjs"), "run `npm run build` first");
  const { env, cacheDir } = await runtime();
  const printed = await version(env);
  assert.match(printed, /^0\.1\.0\b/);
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
  assert.equal(await readFile(victim, "utf8"), "the user's own file\n");
  // The link itself was replaced by a cache file of castra's own.
  assert.ok((await lstat(file)).isFile());
});

test("a runtime directory others may write is not used for code", async () => {
  const { env, cacheDir } = await runtime();
  const shared = join(cacheDir, "..");
  await mkdir(shared, { mode: 0o700 });
  await chmod(shared, 0o770);
  const printed = await version(env);
  assert.match(printed, /^0\.1\.0\b/);
  await assert.rejects(readdir(cacheDir), { code: "ENOENT" });
  assert.equal(await version(env), printed);
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
