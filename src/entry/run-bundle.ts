import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { Script } from "node:vm";
import { bundleIdOf, codeCacheDir, codeCacheFile, readCodeCache, writeCodeCache } from "./code-cache.js";

/**
 * Runs the CommonJS bundle at `bundle` as `require` would, compiled from V8's code cache when there is one that V8
 * accepts (Node 20 keeps no compile cache for code it did not load itself); when there was none or V8 refused it,
 * this run's code is saved as the run exits, with every function the run compiled, not only the top level.
 */
export function runBundle(bundle: string, env: NodeJS.ProcessEnv = process.env): void {
  const source = readFileSync(bundle, "utf8");
  const id = bundleIdOf(source);
  const dir = id === undefined ? undefined : codeCacheDir(env);
  const cachedData =
    id !== undefined && dir !== undefined ? readCodeCache(codeCacheFile(dir, id)) : undefined;
  // The wrapper shares the bundle's first line, so stack traces keep the bundle's line numbers.
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new Script(wrapped, { filename: bundle, cachedData });
  if (id !== undefined && (cachedData === undefined || script.cachedDataRejected)) {
    process.once("exit", () => {
      try {
        // Looked up again: the first `up` makes the runtime directory after this run started.
        const saveIn = dir ?? codeCacheDir(env);
        if (saveIn)
          writeCodeCache(codeCacheFile(saveIn, id), script.createCachedData(), cachedData !== undefined);
      } catch {
        // Saving the cache only ever saves time; the command's own outcome is what the user sees.
      }
    });
  }
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, dirname(bundle));
}
