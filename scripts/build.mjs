// Bundles the CLI into dist/ with esbuild: dist/cli.cjs is the whole CLI in one CommonJS file (commands load
// lazily inside it), dist/castra.cjs the `castra` command that runs it from V8's code cache
// (docs/architecture.md, "Start-up").
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { build } from "esbuild";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));

function gitSha() {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
  } catch {
    return "";
  }
}

const sha = gitSha();
// `--outdir DIR` builds a private copy (the benchmark's), leaving the shared dist/ alone.
const outdirFlag = process.argv.indexOf("--outdir");
const outdir = outdirFlag >= 0 ? process.argv[outdirFlag + 1] : "dist";
const version = sha ? `${pkg.version} (${sha})` : pkg.version;
const common = { bundle: true, format: "cjs", platform: "node", target: "node20", logLevel: "warning" };

rmSync(outdir, { recursive: true, force: true });
const cli = await build({
  ...common,
  entryPoints: ["src/cli/main.ts"],
  define: { __CASTRA_VERSION__: JSON.stringify(version) },
  metafile: true,
  write: false,
  outfile: `${outdir}/cli.cjs`,
});
const code = cli.outputFiles[0].text;
// The bundle runs as a vm.Script: strict like a module, and without a loader for import(), so all inside it.
if (!code.startsWith('"use strict";')) throw new Error("the bundle is not in strict mode");
for (const [file, output] of Object.entries(cli.metafile.outputs)) {
  const dynamic = output.imports.filter((i) => i.kind === "dynamic-import");
  if (dynamic.length > 0)
    throw new Error(`${file} imports ${dynamic.map((i) => i.path).join(", ")} with import()`);
}
if (/\bimport\(/.test(code)) throw new Error("the bundle calls import()");
// One character beyond ASCII, even in a comment, makes V8 hold the whole source two bytes a character.
const lines = code.split("\n");
const wide = lines.findIndex((line) => /[\u0080-\uffff]/.test(line));
if (wide >= 0) throw new Error(`line ${wide + 1} of the bundle is not ASCII: ${lines[wide].trim()}`);
// Its last line names its hash, which keys the code cache: V8 itself compares sources by length only.
const bundleId = createHash("sha256").update(code).digest("hex").slice(0, 16);
mkdirSync(outdir, { recursive: true });
writeFileSync(`${outdir}/cli.cjs`, `${code}//# castra-bundle ${bundleId}\n`);

await build({ ...common, entryPoints: ["src/entry/start.ts"], outfile: `${outdir}/castra.cjs` });
chmodSync(`${outdir}/castra.cjs`, 0o755);
