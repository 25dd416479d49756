import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadProject } from "../../src/config/load.js";
import { CastraError } from "../../src/errors.js";
import { runCastra } from "../support/cli.js";
import { seeded } from "../support/fuzz/mutate.js";
import { mutateToml } from "../support/fuzz/mutate-toml.js";

/**
 * Random damage to a valid castra.toml must end in a project or a DataError (exit 65) with a message:
 * never an uncaught exception, a stack trace, or a file written. Reproduce with CASTRA_FUZZ_SEED=<seed>.
 */

const CASES = 600;
const BINARY_SAMPLE = 40;
const SEED = Number(process.env.CASTRA_FUZZ_SEED ?? Date.now() % 2 ** 31);

let root: string;
const cases: { bytes: Buffer; outcome: "ok" | 65 }[] = [];

before(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), "castra-fuzz-")));
  console.log(`config fuzz seed: ${SEED} (rerun with CASTRA_FUZZ_SEED=${SEED})`);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

test(`${CASES} mutated castra.toml files load or fail with a DataError (exit 65), in process`, async () => {
  const dir = join(root, "in-process");
  await mkdir(dir);
  const tally = { ok: 0, dataError: 0 };
  for (let i = 0; i < CASES; i++) {
    const bytes = mutateToml(seeded(SEED + i));
    await writeFile(join(dir, "castra.toml"), bytes);
    const context = `case ${i} (seed ${SEED}):\n${bytes.toString("latin1")}`;
    try {
      const project = await loadProject({ cwd: dir, skipDiscovery: true });
      assert.ok(project.vms.length > 0, `a loaded project has VMs; ${context}`);
      cases.push({ bytes, outcome: "ok" });
      tally.ok += 1;
    } catch (err) {
      assert.ok(err instanceof CastraError, `not a CastraError: ${err}; ${context}`);
      assert.equal(err.exitCode, 65, `${err.headline}; ${context}`);
      assert.ok(err.headline.length > 0 && err.hint, `error without a message or hint; ${context}`);
      cases.push({ bytes, outcome: 65 });
      tally.dataError += 1;
    }
  }
  assert.deepEqual(await readdir(dir), ["castra.toml"], "loading never writes a file");
  console.log(`config fuzz: ${tally.ok} loaded, ${tally.dataError} rejected with exit 65`);
  assert.ok(tally.dataError > CASES / 4, "the mutations do break most files");
});

test(`${BINARY_SAMPLE} of the mutated files through \`castra ports\` exit as the parser decided, without a stack trace`, async () => {
  assert.equal(cases.length, CASES, "runs after the in-process test");
  const sample = cases.filter((_, i) => i % Math.floor(CASES / BINARY_SAMPLE) === 0).slice(0, BINARY_SAMPLE);
  const check = async (entry: (typeof cases)[number], index: number) => {
    const dir = join(root, `binary-${index}`);
    await mkdir(dir);
    await writeFile(join(dir, "castra.toml"), entry.bytes);
    const result = await runCastra(["ports"], { cwd: dir, env: { CASTRA_DEBUG: "" } });
    const context = `sample ${index} (seed ${SEED}): stderr:\n${result.stderr}`;
    assert.equal(result.code, entry.outcome === "ok" ? 0 : 65, context);
    assert.doesNotMatch(result.stderr, /\n\s+at /, `stack trace; ${context}`);
    if (entry.outcome === 65) assert.match(result.stderr, /^error: .+\n(.|\n)*hint: /, context);
    assert.deepEqual(await readdir(dir), ["castra.toml"], `no file written; ${context}`);
  };
  // A few at a time: spawning is the slow part.
  for (let i = 0; i < sample.length; i += 8) {
    await Promise.all(sample.slice(i, i + 8).map((entry, j) => check(entry, i + j)));
  }
});
