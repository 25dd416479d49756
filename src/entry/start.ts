#!/usr/bin/env node
import { join } from "node:path";
import { codeCacheDir, codeCacheFile, runBundle } from "./code-cache.js";

// The `castra` command (dist/castra.cjs): the CLI is the bundle beside it (dist/cli.cjs), started from V8's code
// cache when there is one, which saves most of the time spent loading it (docs/architecture.md, "Start-up").

declare const __CASTRA_BUNDLE_ID__: string;

const cacheDir = codeCacheDir();
runBundle(join(__dirname, "cli.cjs"), cacheDir && codeCacheFile(cacheDir, __CASTRA_BUNDLE_ID__));
