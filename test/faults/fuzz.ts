import { mkdir, writeFile } from "node:fs/promises";
import { isIPv4 } from "node:net";
import { isAbsolute, join } from "node:path";
import { loadProjectFile } from "../../src/config/load.js";
import type { Project } from "../../src/config/model.js";
import { CastraError } from "../../src/errors.js";
import { loadCatalog } from "../../src/images/catalog.js";
import type { CatalogEntry } from "../../src/images/catalog-schema.js";
import { seeded } from "../support/fuzz/mutate.js";
import { mutateCatalog } from "../support/fuzz/mutate-catalog.js";
import { mutateToml } from "../support/fuzz/mutate-toml.js";
import { buildImageFixture, fixtureCatalog } from "../support/image-fixtures.js";
import {
  type CaseContext,
  exitOf,
  hasStackTrace,
  listTree,
  type RunResult,
  type Scenario,
} from "./harness.js";

/**
 * 1,000 damaged castra.toml files and 1,000 damaged catalogs through the real loaders in-process (fast),
 * and 50 of them through the built CLI: a result or a message with exit 64/65, never a crash or a stray file.
 * Reproduce a run with CASTRA_FUZZ_SEED=<the seed in the table>; CASTRA_FUZZ_COUNT=N for a longer search.
 */
const COUNT = Number(process.env.CASTRA_FUZZ_COUNT ?? 1000);
/** 50 of the cases also run through the CLI, whatever COUNT is. */
const SAMPLE_EVERY = Math.max(1, Math.floor(COUNT / 50));
const SEED = Number(process.env.CASTRA_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

function tally(counts: Map<string, number>): string {
  return [...counts].map(([k, v]) => `${v} ${k}`).join(", ");
}
const bump = (counts: Map<string, number>, key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);

/** An in-process load: the value, a CastraError with an allowed code and a headline, or a finding. */
async function classify<T>(
  load: () => Promise<T>,
  counts: Map<string, number>,
): Promise<T | string | undefined> {
  try {
    const value = await load();
    bump(counts, "valid");
    return value;
  } catch (err) {
    if (err instanceof CastraError && [64, 65].includes(err.exitCode) && err.headline.trim() !== "") {
      bump(counts, `refused (${err.exitCode})`);
      return undefined;
    }
    return err instanceof CastraError
      ? `exit ${err.exitCode}: ${err.headline}`
      : `${(err as Error)?.name ?? typeof err}: ${(err as Error)?.message ?? String(err)}`;
  }
}

/** What an accepted castra.toml must never contain, whatever the damage. */
function projectProblem(p: Project): string | undefined {
  for (const vm of p.vms) {
    if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(vm.name)) return `accepted VM name ${JSON.stringify(vm.name)}`;
    if (!isAbsolute(vm.overlay)) return `relative overlay ${vm.overlay}`;
    for (const f of vm.portForwards) {
      if (![f.host, f.guest].every((n) => Number.isInteger(n) && n >= 1 && n <= 65535))
        return `port ${f.host}→${f.guest}`;
      if (!isIPv4(f.hostAddress)) return `host_address ${f.hostAddress}`;
    }
  }
  return undefined;
}

/** Not empty, no separator, no `..`, no control character. */
const plainName = (n: string) =>
  n !== "" && !/[/\\]|\.\./.test(n) && ![...n].some((c) => (c.codePointAt(0) ?? 0) < 0x20);

/** What an accepted catalog must never contain: traversal in any name, another URL scheme. */
function catalogProblem(entries: CatalogEntry[]): string | undefined {
  for (const e of entries) {
    if (!plainName(e.id) || !plainName(e.version)) return `accepted id/version ${e.id}@${e.version}`;
    for (const a of e.artifacts) {
      const outputs = a.transforms.flatMap((t) => ("output" in t ? [t.output] : []));
      const bad = [a.final_name, ...outputs].find((n) => !plainName(n));
      if (bad !== undefined) return `accepted file name ${JSON.stringify(bad)}`;
      if (!["http:", "https:", "file:"].includes(new URL(a.url).protocol)) return `accepted URL ${a.url}`;
    }
  }
  return undefined;
}

/** A CLI run is fine when it exits with an allowed code, says why when it fails, and shows no stack trace. */
function cliProblem(result: RunResult, allowed: number[]): string | undefined {
  if (result.code === null || !allowed.includes(result.code)) return exitOf(result);
  if (result.code !== 0 && !/^error: \S/m.test(result.stderr)) return `${exitOf(result)} without a message`;
  if (hasStackTrace(result.stderr)) return `${exitOf(result)} with a stack trace`;
  return undefined;
}

/** Files a run left outside `.castra/` in `dir` (besides the inputs). */
async function strays(dir: string, inputs: string[]): Promise<string[]> {
  return (await listTree(dir)).filter(
    (p) => !inputs.includes(p) && p !== ".castra" && !p.startsWith(".castra/"),
  );
}

/** Runs `jobs` at most `width` at a time. */
async function pool<T>(items: T[], width: number, job: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await job(item);
    }),
  );
}

const tomlFuzz: Scenario = {
  name: "fuzz castra.toml",
  timeoutMs: 180_000,
  async run(ctx: CaseContext) {
    const dir = await ctx.dir("in-process");
    const file = join(dir, "castra.toml");
    const counts = new Map<string, number>();
    const findings: string[] = [];
    const samples: { i: number; bytes: Buffer }[] = [];
    for (let i = 0; i < COUNT; i++) {
      const bytes = mutateToml(seeded(SEED + i));
      await writeFile(file, bytes);
      const outcome = await classify(() => loadProjectFile(file, dir), counts);
      const problem = typeof outcome === "string" ? outcome : outcome ? projectProblem(outcome) : undefined;
      if (problem) findings.push(`#${i} ${problem}`);
      if (i % SAMPLE_EVERY === 0) samples.push({ i, bytes });
    }
    const left = await strays(dir, ["castra.toml"]);
    ctx.check(
      `${COUNT} mutated castra.toml through the loader (seed ${SEED})`,
      "a project, or a CastraError 64/65 with a message; nothing written",
      `${tally(counts)}${findings.length ? `; FINDINGS: ${findings.slice(0, 3).join("; ")}` : ""}${left.length ? `; wrote ${left.join(" ")}` : ""}`,
      findings.length === 0 && left.length === 0,
    );

    const cliCounts = new Map<string, number>();
    const cliFindings: string[] = [];
    await pool(samples, 3, async ({ i, bytes }) => {
      const project = join(ctx.root, "cli", String(i));
      await mkdir(project, { recursive: true });
      await writeFile(join(project, "castra.toml"), bytes);
      const command = (i / SAMPLE_EVERY) % 2 === 0 ? ["status"] : ["ports"];
      const result = await ctx.castra(command, { cwd: project, timeoutMs: 30_000 });
      bump(cliCounts, exitOf(result));
      const problem = cliProblem(result, [0, 64, 65]);
      const extra = await strays(project, ["castra.toml"]);
      if (problem || extra.length)
        cliFindings.push(`#${i} ${command[0]}: ${problem ?? ""} ${extra.join(" ")}`.trim());
    });
    ctx.check(
      `${samples.length} of them through \`castra status\` / \`castra ports\``,
      "exit 0/64/65, a message on failure, no stack trace, nothing written outside .castra/",
      cliFindings.length ? cliFindings.slice(0, 3).join("; ") : tally(cliCounts),
      cliFindings.length === 0,
    );
  },
};

const catalogFuzz: Scenario = {
  name: "fuzz catalog",
  timeoutMs: 180_000,
  async run(ctx: CaseContext) {
    const fixture = buildImageFixture(await ctx.dir("fixture"), 1);
    const server = await ctx.server();
    for (const f of [fixture.vhd, fixture.kernel, fixture.initrd])
      server.serve(`/${f.name}`, { file: f.path });
    const valid = fixtureCatalog(fixture, server.origin);
    const dir = await ctx.dir("in-process");
    const file = join(dir, "catalog.json");
    const counts = new Map<string, number>();
    const findings: string[] = [];
    const samples: { i: number; bytes: Buffer }[] = [];
    for (let i = 0; i < COUNT; i++) {
      const bytes = mutateCatalog(valid, seeded(SEED + COUNT + i));
      await writeFile(file, bytes);
      const outcome = await classify(() => loadCatalog({ CASTRA_CATALOG: file }), counts);
      const problem =
        typeof outcome === "string" ? outcome : outcome ? catalogProblem(outcome.entries) : undefined;
      if (problem) findings.push(`#${i} ${problem}`);
      if (i % SAMPLE_EVERY === 0) samples.push({ i, bytes });
    }
    const left = await strays(dir, ["catalog.json"]);
    ctx.check(
      `${COUNT} mutated CASTRA_CATALOG files through the loader (seed ${SEED})`,
      "entries with plain names and http/https/file URLs, or a CastraError 65; nothing written",
      `${tally(counts)}${findings.length ? `; FINDINGS: ${findings.slice(0, 3).join("; ")}` : ""}${left.length ? `; wrote ${left.join(" ")}` : ""}`,
      findings.length === 0 && left.length === 0,
    );

    // Sequential: each run's requests are checked against its own outcome.
    const cliCounts = new Map<string, number>();
    const cliFindings: string[] = [];
    for (const { i, bytes } of samples) {
      const project = join(ctx.root, "cli", String(i));
      await mkdir(project, { recursive: true });
      const catalog = join(ctx.root, "cli", `${i}.json`);
      await writeFile(catalog, bytes);
      server.requests.length = 0;
      const result = await ctx.castra(["images", "pull"], {
        cwd: project,
        env: { CASTRA_CATALOG: catalog },
        timeoutMs: 60_000,
      });
      bump(cliCounts, exitOf(result));
      // 69 is a mutated URL the server cannot answer: the catalog was valid, the download failed.
      let problem = cliProblem(result, [0, 64, 65, 69]);
      if (!problem && result.stderr.includes(catalog) && server.requests.length > 0)
        problem = `refused the catalog after ${server.requests.length} requests`;
      const extra = await strays(project, []);
      if (problem || extra.length) cliFindings.push(`#${i}: ${problem ?? ""} ${extra.join(" ")}`.trim());
    }
    ctx.check(
      `${samples.length} of them through \`castra images pull\``,
      "exit 0/64/65 (69: a download the mutated URL breaks), a message, no stack trace, nothing outside .castra/",
      cliFindings.length ? cliFindings.slice(0, 3).join("; ") : tally(cliCounts),
      cliFindings.length === 0,
    );
  },
};

export const fuzzScenarios: Scenario[] = [tomlFuzz, catalogFuzz];
