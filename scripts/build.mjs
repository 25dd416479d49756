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
const version = sha ? `${pkg.version} (${sha})` : pkg.version;

rmSync("dist", { recursive: true, force: true });
await build({
  entryPoints: { castra: "src/cli/main.ts" },
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  chunkNames: "chunks/[name]-[hash]",
  define: { __CASTRA_VERSION__: JSON.stringify(version) },
  // commander is CommonJS and calls require("node:events"): give the ESM bundle a real require.
  banner: {
    js: 'import { createRequire as __castraRequire } from "node:module"; const require = __castraRequire(import.meta.url);',
  },
  logLevel: "warning",
});
chmodSync("dist/castra.js", 0o755);
