import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { CASTRA_BIN } from "../support/cli.js";
import { fixtureCatalog, serveImageFixture, writeJson } from "../support/image-fixtures.js";

// How people get castra: scripts/setup.sh in a fresh clone (castra on PATH for a new login shell), and the
// npm package (`npm pack`, then installed from the tarball with no registry). Run `npm run build` first.
const run = promisify(execFile);
const REPO = fileURLToPath(new URL("../..", import.meta.url));
const root = await mkdtemp(join(tmpdir(), "castra-distribution-"));
after(() => rm(root, { recursive: true, force: true }));

/** Runs a command to its end; rejects with its output when it fails. */
async function sh(file: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }) {
  return run(file, args, { ...options, maxBuffer: 64 * 1024 * 1024, timeout: 900_000 });
}

test("a clean clone: setup.sh puts castra on PATH for a new login shell anywhere; a second run is harmless", async () => {
  const clone = join(root, "castra");
  const home = join(root, "home");
  await mkdir(home);
  await sh("git", ["clone", "--quiet", REPO, clone], { cwd: root });
  const { stdout: sha } = await sh("git", ["rev-parse", "--short", "HEAD"], { cwd: clone });
  const { stdout: npmCache } = await sh("npm", ["config", "get", "cache"], { cwd: root });
  // A user whose npm prefix (~/.local) is not on any PATH yet; npm's packages come from the warm cache.
  // Without the npm_* variables `npm test` sets: its npm_config_prefix would send the link to npm's own prefix.
  const shellEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)));
  const env = {
    ...shellEnv,
    HOME: home,
    SHELL: "/bin/bash",
    NPM_CONFIG_PREFIX: join(home, ".local"),
    NPM_CONFIG_CACHE: npmCache.trim(),
  };
  const bin = join(home, ".local", "bin");
  for (const round of [1, 2]) {
    const setup = await sh("bash", ["scripts/setup.sh"], { cwd: clone, env });
    const lines = setup.stdout.trim().split("\n");
    assert.equal(
      lines.at(-1),
      `castra is ready: run 'castra up' in any directory (in a new login shell, or after: export PATH="${bin}:$PATH")`,
    );
    assert.ok(
      lines.includes(
        `castra: ${bin}/castra runs this checkout's build (${clone}); remove it with: npm uninstall --global castra`,
      ),
      setup.stdout,
    );
    const added = `castra: added ${bin} to PATH in ${home}/.profile (delete the line ending in '# castra (scripts/setup.sh)' to undo)`;
    assert.equal(lines.includes(added), round === 1, `round ${round}:\n${setup.stdout}`);
    const profile = await readFile(join(home, ".profile"), "utf8");
    assert.equal(profile, `export PATH="${bin}:$PATH"  # castra (scripts/setup.sh)\n`);
    // A new login shell, with nothing of this process's environment, in another directory.
    const login = ["-i", `HOME=${home}`, "SHELL=/bin/bash", "bash", "-lc", "castra --version"];
    assert.equal((await sh("env", login, { cwd: "/" })).stdout, `0.1.0 (${sha.trim()})\n`);
  }
});

test("npm pack holds the bundle, README and LICENSE only; installed offline from it, castra pulls an image", async () => {
  assert.ok(existsSync(CASTRA_BIN), "run `npm run build` first");
  const packed = join(root, "packed");
  await mkdir(packed);
  // --ignore-scripts: pack the dist/ this test run built; prepack would rebuild it under the other tests.
  const { stdout } = await sh("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", packed], {
    cwd: REPO,
  });
  const [{ filename, files }] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
  const paths = files.map((f) => f.path).sort();
  assert.ok(paths.includes("LICENSE") && paths.includes("README.md") && paths.includes("dist/castra.cjs"));
  assert.deepEqual(
    paths.filter((p) => !/^(dist\/.+\.cjs|package\.json|README\.md|LICENSE)$/.test(p)),
    [],
    "nothing but the bundle, package.json, README and LICENSE",
  );
  assert.deepEqual(
    paths.filter((p) => /test|bench|fixture|^src\//.test(p)),
    [],
  );

  // No registry at all: nothing to fetch, nothing to build.
  const prefix = join(root, "prefix");
  const offline = {
    ...process.env,
    NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/",
    NPM_CONFIG_CACHE: join(root, "empty-npm-cache"),
  };
  const args = ["install", "--global", "--offline", "--no-audit", "--no-fund", "--prefix", prefix];
  await sh("npm", [...args, join(packed, filename)], { cwd: root, env: offline });
  const castra = join(prefix, "bin", "castra");
  const installed = join(prefix, "lib", "node_modules", "castra");
  assert.equal(existsSync(join(installed, "node_modules")), false, "no dependencies");
  assert.match((await sh(castra, ["--version"], { cwd: root })).stdout, /^0\.1\.0\b/);

  const { dir, fixture, server } = await serveImageFixture("castra-distribution-image-");
  try {
    const catalog = writeJson(join(dir, "catalog.json"), fixtureCatalog(fixture, server.origin));
    const project = join(root, "project");
    await mkdir(project);
    const env = { ...process.env, CASTRA_CATALOG: catalog, CASTRA_CACHE_DIR: "off", NO_COLOR: "1" };
    const pull = await sh(castra, ["images", "pull"], { cwd: project, env });
    assert.match(pull.stderr, /alpine-minimal@v1/);
    assert.ok(existsSync(join(project, ".castra", "images", "alpine-minimal", "v1", "rootfs.qcow2")));
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
