// Bundles the CLI into dist/ with esbuild; commands are split into chunks loaded on demand.
import { execFileSync } from "node:child_process";
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

rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { castra: "src/cli/main.ts" },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  chunkNames: "chunks/[name]-[hash]",
  define: { __CASTRA_VERSION__: JSON.stringify(version) },
  logLevel: "warning",
});
chmodSync(`${outdir}/castra.js`, 0o755);
