import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The proxy variables castra reads: tests set them explicitly, never inherit the machine's. */
export const PROXY_VARIABLES = ["http_proxy", "https_proxy", "no_proxy"].flatMap((n) => [n, n.toUpperCase()]);

/** The built CLI, spawned as a user would run it. Build first with `npm run build`. */
export const CASTRA_BIN = fileURLToPath(new URL("../../dist/castra.cjs", import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** A command that runs castra, e.g. `["unshare", "-n"]` for a network namespace of its own. */
  wrapper?: string[];
  /** Called with the child as soon as it is spawned (to send signals mid-run). */
  onSpawn?: (child: import("node:child_process").ChildProcess) => void;
}

/** Runs `castra ...args` to completion; the environment is the test's (minus proxies) plus `env`, colour off. */
export function runCastra(args: string[], options: CliOptions): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const [command = process.execPath, ...prefix] = [...(options.wrapper ?? []), process.execPath];
    const child = spawn(command, [...prefix, CASTRA_BIN, ...args], {
      cwd: options.cwd,
      env: { ...withoutProxies(process.env), NO_COLOR: "1", FORCE_COLOR: "", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    options.onSpawn?.(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function withoutProxies(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !PROXY_VARIABLES.includes(name)));
}
