#!/usr/bin/env node
// The `castra` command (dist/castra.cjs): the CLI is the bundle beside it (dist/cli.cjs), started from V8's code
// cache when there is one, which saves most of the time spent loading it (docs/architecture.md, "Start-up").
import { join } from "node:path";
import { runBundle } from "./run-bundle.js";

runBundle(join(__dirname, "cli.cjs"));
