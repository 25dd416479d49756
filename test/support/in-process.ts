import { mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { captureIO } from "../../src/cli/io.js";
import { runCli } from "../../src/cli/run.js";
import type { VmHost } from "../../src/project/vm-host.js";

export interface InProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface InProcessOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  vmHost?: VmHost;
  signal?: AbortSignal;
  /** Pretend stdout and stderr are a terminal (live lines, progress bars). */
  isTTY?: boolean;
}

/** Runs `castra ...argv` in this process, as `main` would, with captured output and no colour. */
export async function castraInProcess(argv: string[], options: InProcessOptions): Promise<InProcessResult> {
  const io = captureIO({ cwd: options.cwd, env: { NO_COLOR: "1", ...options.env }, isTTY: options.isTTY });
  const code = await runCli(argv, {
    makeIO: () => io,
    signal: options.signal ?? new AbortController().signal,
    vmHost: options.vmHost,
    debug: false,
  });
  return { code, stdout: io.stdout(), stderr: io.stderr() };
}

/** A temporary project directory with `castra.toml` holding `toml`; removed by the returned function. */
export async function tempProject(toml?: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), "castra-inproc-")));
  if (toml !== undefined) await writeFile(join(dir, "castra.toml"), toml);
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** castra.toml text for bring-your-own VMs named `names`, plus `extra` (e.g. a [broker] table). */
export function byoToml(names: string[], extra = ""): string {
  const vms = names.map((name) => `[[vms]]\nname = "${name}"\nbase_image = "images/${name}.qcow2"\n`);
  return ['[project]\nname = "demo"\n', ...vms, extra].join("\n");
}
