import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, test } from "node:test";
import { InputMissingError } from "../errors.js";
import { findConfigFile, findProject } from "./discover.js";
import { loadOrDefaultProject, loadProject } from "./load.js";

const CONFIG = `[project]
name = "tree"
[[vms]]
name = "box"
base_image = "images/box.qcow2"
`;

let root: string;
let nested: string;

before(async () => {
  // realpath: on macOS the temp dir is behind a symlink, and discovery reports real paths.
  root = await realpath(await mkdtemp(join(tmpdir(), "castra-discover-")));
  nested = join(root, "src", "deep", "er");
  await mkdir(nested, { recursive: true });
  await writeFile(join(root, "castra.toml"), CONFIG);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

test("discovery finds castra.toml in a parent directory and resolves paths against it", async () => {
  assert.equal(await findConfigFile({ cwd: nested }), join(root, "castra.toml"));
  const project = await loadOrDefaultProject({ cwd: nested });
  assert.equal(project.name, "tree");
  assert.equal(project.rootDir, root);
  assert.equal(project.stateDir, join(root, ".castra"));
  assert.deepEqual(project.vms[0]?.source, { kind: "path", path: join(root, "images", "box.qcow2") });
});

test("the nearest castra.toml wins over one further up", async () => {
  const inner = join(root, "src");
  await writeFile(join(inner, "castra.toml"), CONFIG.replace('"tree"', '"inner"'));
  try {
    assert.equal((await loadOrDefaultProject({ cwd: nested })).name, "inner");
  } finally {
    await rm(join(inner, "castra.toml"));
  }
});

test("--skip-discovery only looks in the working directory", async () => {
  assert.equal(await findConfigFile({ cwd: nested, skipDiscovery: true }), null);
  assert.equal(await findConfigFile({ cwd: root, skipDiscovery: true }), join(root, "castra.toml"));
  const project = await loadOrDefaultProject({ cwd: nested, skipDiscovery: true });
  assert.equal(project.synthesized, true);
});

test("--config wins over discovery, relative to the working directory, and may name a directory", async () => {
  const other = join(root, "other.toml");
  await writeFile(other, CONFIG.replace('"tree"', '"other"'));
  assert.equal((await loadOrDefaultProject({ cwd: root, configPath: "other.toml" })).name, "other");
  assert.equal(await findConfigFile({ cwd: nested, configPath: "../../.." }), join(root, "castra.toml"));
});

test("--config naming a missing file is exit 66 with a hint to create it", async () => {
  await assert.rejects(loadOrDefaultProject({ cwd: root, configPath: "missing.toml" }), (err: unknown) => {
    assert.ok(err instanceof InputMissingError);
    assert.equal(err.exitCode, 66);
    assert.match(err.headline, /Config file not found: .*missing\.toml/);
    assert.match(err.hint ?? "", /castra init -o .*missing\.toml/);
    return true;
  });
});

test("an empty directory gets the synthesized default project, and nothing is written", async () => {
  const empty = await realpath(await mkdtemp(join(tmpdir(), "castra-empty-")));
  try {
    const project = await loadOrDefaultProject({ cwd: empty, skipDiscovery: true });
    assert.deepEqual(project, {
      name: basename(empty),
      rootDir: empty,
      configPath: null,
      synthesized: true,
      stateDir: join(empty, ".castra"),
      version: "0.1.0",
      vms: [
        {
          name: "alpine",
          source: { kind: "managed", name: "alpine-minimal", version: "v1", useProfile: true },
          overlay: join(empty, ".castra", "alpine-overlay.qcow2"),
          portForwards: [],
          mounts: [{ host: empty, guest: "/project", writable: false }],
          provision: [],
        },
      ],
      warnings: [],
    });
    assert.equal(project.broker, undefined);
    assert.deepEqual(await readdir(empty), []);
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});

test("loadProject insists on a castra.toml and says how to create one", async () => {
  await assert.rejects(loadProject({ cwd: nested, skipDiscovery: true }), (err: unknown) => {
    assert.ok(err instanceof InputMissingError);
    assert.match(err.headline, /No castra\.toml found/);
    assert.equal(err.hint, "create one with `castra init`");
    return true;
  });
  assert.equal((await loadProject({ cwd: nested })).name, "tree");
});

test("a syntax error in a discovered file names it relative to the working directory", async () => {
  const dir = join(root, "broken");
  await mkdir(dir);
  await writeFile(join(dir, "castra.toml"), '[[vms]]\nname = "x\n');
  await assert.rejects(
    loadOrDefaultProject({ cwd: root, configPath: "broken/castra.toml" }),
    /^DataError: broken\/castra\.toml:2:\d+: /,
  );
});

test("a zero-config project is found from below: the nearest .castra/ marks its root; castra.toml wins at one level", async () => {
  const root = await mkdtemp(join(tmpdir(), "castra-marker-"));
  try {
    await mkdir(join(root, ".castra"), { recursive: true });
    await mkdir(join(root, "src", "app"), { recursive: true });
    assert.deepEqual(await findProject({ cwd: join(root, "src", "app") }), {
      kind: "default",
      rootDir: root,
    });
    assert.deepEqual(await findProject({ cwd: join(root, "src", "app"), skipDiscovery: true }), {
      kind: "default",
      rootDir: join(root, "src", "app"),
    });
    await writeFile(join(root, "castra.toml"), "");
    assert.deepEqual(await findProject({ cwd: join(root, "src") }), {
      kind: "config",
      path: join(root, "castra.toml"),
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
