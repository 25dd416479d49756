import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadProject } from "../../src/config/load.js";
import { CastraError } from "../../src/errors.js";
import { runCastra } from "../support/cli.js";

/**
 * Random damage to a valid castra.toml must end in a project or a DataError (exit 65) with a message:
 * never an uncaught exception, a stack trace, or a file written. Reproduce with CASTRA_FUZZ_SEED=<seed>.
 */

const CASES = 600;
const BINARY_SAMPLE = 40;
const SEED = Number(process.env.CASTRA_FUZZ_SEED ?? Date.now() % 2 ** 31);

const VALID = `version = "0.1.0"

[project]
name = "fuzz"

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

  [[vms.port_forwards]]
  host = 8053
  guest = 53
  protocol = "udp"
  host_address = "127.0.0.1"

[[vms]]
name = "web"
managed_image = { name = "alpine-minimal", version = "v1", profile = false }
memory = "1G"

  [[vms.port_forwards]]
  host = 8080
  guest = 80

[broker]
port = 7070
`;

const OTHER_VALUES = [
  "42",
  "-1",
  "0",
  "3.5",
  "true",
  '"text"',
  '""',
  "[]",
  "[1, 2]",
  "{}",
  '{ name = "x" }',
  "1979-05-27",
  "inf",
  "nan",
  "99999999999999999999",
  '"0.0.0.0"',
  '"::1"',
  '"2048"',
  '"../../etc"',
  "'''multi\nline'''",
];
const KEYS = [
  "name",
  "base_image",
  "managed_image",
  "overlay",
  "cpus",
  "memory",
  "host",
  "guest",
  "protocol",
  "port",
  "vms",
  "x",
];

/** mulberry32: a small seeded PRNG, so a failing case is reproducible from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Mutation = (bytes: Buffer, rand: () => number) => Buffer;
const pick = <T>(items: readonly T[], rand: () => number): T => items[Math.floor(rand() * items.length)] as T;
const lines = (b: Buffer) => b.toString("latin1").split("\n");
const join_ = (l: string[]) => Buffer.from(l.join("\n"), "latin1");

const MUTATIONS: Record<string, Mutation> = {
  flipByte: (b, rand) => {
    const copy = Buffer.from(b);
    copy[Math.floor(rand() * copy.length)] = Math.floor(rand() * 256);
    return copy;
  },
  dropLine: (b, rand) => {
    const l = lines(b);
    l.splice(Math.floor(rand() * l.length), 1);
    return join_(l);
  },
  duplicateLine: (b, rand) => {
    const l = lines(b);
    const i = Math.floor(rand() * l.length);
    l.splice(i, 0, l[i] ?? "");
    return join_(l);
  },
  swapValue: (b, rand) => {
    const l = lines(b);
    const assignments = l.map((line, i) => [line, i] as const).filter(([line]) => /=/.test(line));
    if (assignments.length === 0) return b;
    const [line, i] = pick(assignments, rand);
    l[i] = line.replace(/=.*$/, `= ${pick(OTHER_VALUES, rand)}`);
    return join_(l);
  },
  renameKey: (b, rand) => {
    const l = lines(b);
    const assignments = l.map((line, i) => [line, i] as const).filter(([line]) => /^\s*\w+\s*=/.test(line));
    if (assignments.length === 0) return b;
    const [line, i] = pick(assignments, rand);
    l[i] = line.replace(/\w+/, rand() < 0.5 ? pick(KEYS, rand) : `${line.trim().slice(0, 3)}zz`);
    return join_(l);
  },
  truncate: (b, rand) => b.subarray(0, Math.floor(rand() * b.length)),
  swapLines: (b, rand) => {
    const l = lines(b);
    const i = Math.floor(rand() * l.length);
    const j = Math.floor(rand() * l.length);
    [l[i], l[j]] = [l[j] ?? "", l[i] ?? ""];
    return join_(l);
  },
};

function mutate(rand: () => number): { bytes: Buffer; applied: string[] } {
  let bytes: Buffer = Buffer.from(VALID);
  const applied: string[] = [];
  const rounds = 1 + Math.floor(rand() * 3);
  for (let r = 0; r < rounds; r++) {
    const name = pick(Object.keys(MUTATIONS), rand);
    bytes = (MUTATIONS[name] as Mutation)(bytes, rand);
    applied.push(name);
  }
  return { bytes, applied };
}

let root: string;
const cases: { bytes: Buffer; applied: string[]; outcome: "ok" | 65 }[] = [];

before(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), "castra-fuzz-")));
  console.log(`config fuzz seed: ${SEED} (rerun with CASTRA_FUZZ_SEED=${SEED})`);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

test(`${CASES} mutated castra.toml files load or fail with a DataError (exit 65), in process`, async () => {
  const rand = prng(SEED);
  const dir = join(root, "in-process");
  await mkdir(dir);
  const tally = { ok: 0, dataError: 0 };
  for (let i = 0; i < CASES; i++) {
    const { bytes, applied } = mutate(rand);
    await writeFile(join(dir, "castra.toml"), bytes);
    const context = `case ${i} (seed ${SEED}, ${applied.join(" + ")}):\n${bytes.toString("latin1")}`;
    try {
      const project = await loadProject({ cwd: dir, skipDiscovery: true });
      assert.ok(project.vms.length > 0, `a loaded project has VMs; ${context}`);
      cases.push({ bytes, applied, outcome: "ok" });
      tally.ok += 1;
    } catch (err) {
      assert.ok(err instanceof CastraError, `not a CastraError: ${err}; ${context}`);
      assert.equal(err.exitCode, 65, `${err.headline}; ${context}`);
      assert.ok(err.headline.length > 0 && err.hint, `error without a message or hint; ${context}`);
      cases.push({ bytes, applied, outcome: 65 });
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
    const context = `sample ${index} (seed ${SEED}, ${entry.applied.join(" + ")}): stderr:\n${result.stderr}`;
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
