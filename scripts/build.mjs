// Bundles the CLI into dist/ with esbuild: dist/cli.cjs is the whole CLI in one CommonJS file (commands load
// lazily inside it), dist/castra.cjs the `castra` command that runs it from V8's code cache
// (docs/architecture.md, "Start-up").
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, readFileSync, rmSync } from "node:fs";
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
  outfile: `${outdir}/cli.cjs`,
  define: { __CASTRA_VERSION__: JSON.stringify(version) },
  metafile: true,
});
// The bundle runs as a vm.Script, which has no loader for import(): everything must be inside it.
for (const [file, output] of Object.entries(cli.metafile.outputs)) {
  const dynamic = output.imports.filter((i) => i.kind === "dynamic-import");
  if (dynamic.length > 0)
    throw new Error(`${file} imports ${dynamic.map((i) => i.path).join(", ")} with import()`);
}

const bundleId = createHash("sha256")
  .update(readFileSync(`${outdir}/cli.cjs`))
  .digest("hex")
  .slice(0, 16);
await build({
  ...common,
  entryPoints: ["src/entry/start.ts"],
  outfile: `${outdir}/castra.cjs`,
  define: { __CASTRA_BUNDLE_ID__: JSON.stringify(bundleId) },
});
chmodSync(`${outdir}/castra.cjs`, 0o755);
