import { type ChildProcess, spawn } from "node:child_process";
import { lstat, mkdir, mkdtemp, readdir, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CASTRA_BIN, PROXY_VARIABLES } from "../support/cli.js";
import { FixtureServer } from "../support/http-server.js";
import { pidsRunning } from "../support/processes.js";
import { isAlive, killQuietly } from "./proc.js";

/** One line of the fault table. */
export interface Row {
  name: string;
  expected: string;
  observed: string;
  pass: boolean;
}

export interface RunOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Called with the child as soon as it is spawned (to signal it mid-run). */
  onSpawn?: (child: ChildProcess) => void;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A group of rows that shares one temp directory, its servers and its processes. */
export interface Scenario {
  name: string;
  /** The whole scenario is abandoned (and everything it started killed) after this long. */
  timeoutMs: number;
  run(ctx: CaseContext): Promise<void>;
}

/** The CLI under test: run.ts builds a private copy (others may rebuild dist/ meanwhile), else dist/castra.cjs. */
export function castraBin(): string {
  return process.env.CASTRA_FAULTS_BIN ?? CASTRA_BIN;
}

/** Variables from the caller's shell that would change castra's behaviour under test. */
const SCRUBBED = [
  "CASTRA_CATALOG",
  "CASTRA_MIRROR",
  "CASTRA_STALL_TIMEOUT",
  "CASTRA_MIN_RATE",
  "CASTRA_DEBUG",
  "CASTRA_CONFIG",
  ...PROXY_VARIABLES,
];

/**
 * Spawns `cmd args` to completion with a hard time limit; never rejects. The child leads its own process
 * group, so the limit (and a scenario's cleanup) also ends what it started in the foreground (`sh -c` wrappers).
 */
export function run(cmd: string, args: string[], options: RunOptions): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    options.onSpawn?.(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => killGroup(child.pid), options.timeoutMs ?? 120_000);
    child.on("error", (err) => {
      stderr += String(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      // CASTRA_FAULTS_VERBOSE=1: every failed command's output, to debug a failing case.
      if (process.env.CASTRA_FAULTS_VERBOSE === "1" && code !== 0)
        process.stderr.write(`## ${[cmd, ...args].join(" ")} → ${code ?? signal}\n${stdout}${stderr}\n`);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** SIGKILL to the process group `pid` leads (see `run`). */
export function killGroup(pid: number | undefined): void {
  if (pid) killQuietly(-pid);
}

export class CaseContext {
  readonly rows: Row[] = [];
  /** Aborted when the scenario runs out of time: loops that poll should stop. */
  readonly signal: AbortSignal;
  private readonly servers: FixtureServer[] = [];
  private readonly pids = new Set<number>();
  private readonly cleanups: (() => Promise<void>)[] = [];
  /** Process groups of the commands this scenario is running right now. */
  private readonly groups = new Set<number>();

  constructor(
    readonly root: string,
    signal: AbortSignal,
  ) {
    this.signal = signal;
  }

  /** The environment every castra run gets: TCG, no colour, a private user-wide cache, nothing inherited. */
  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NO_COLOR: "1",
      FORCE_COLOR: "",
      CASTRA_ACCEL: "tcg",
      CASTRA_CACHE_DIR: join(this.root, "user-cache"),
    };
    for (const name of SCRUBBED) delete env[name];
    return { ...env, ...extra };
  }

  /** A fresh directory under this scenario's root. */
  async dir(name: string): Promise<string> {
    const path = join(this.root, name);
    await mkdir(path, { recursive: true });
    return path;
  }

  /** `castra ...args` from the built CLI, as a user runs it. */
  castra(args: string[], options: RunOptions): Promise<RunResult> {
    return this.exec(process.execPath, [castraBin(), ...args], options);
  }

  /** Any command, with castra's test environment plus `options.env`. */
  exec(cmd: string, args: string[], options: RunOptions): Promise<RunResult> {
    // A scenario that ran out of time may still be running: it must not start anything after its cleanup.
    if (this.signal.aborted)
      return Promise.resolve({
        code: null,
        signal: "SIGKILL",
        stdout: "",
        stderr: "scenario timed out",
        ms: 0,
      });
    let leader: number | undefined;
    const done = run(cmd, args, {
      ...options,
      env: this.env(options.env),
      onSpawn: (child) => {
        leader = child.pid;
        if (leader) this.groups.add(leader);
        options.onSpawn?.(child);
      },
    });
    // Once its leader is gone, a group id may be reused by someone else's process: forget it.
    return done.finally(() => leader && this.groups.delete(leader));
  }

  async server(): Promise<FixtureServer> {
    const server = await FixtureServer.start();
    this.servers.push(server);
    return server;
  }

  /** A process to SIGKILL when the scenario ends, whatever happened. */
  track(pid: number | undefined): void {
    if (pid) this.pids.add(pid);
  }

  onCleanup(fn: () => Promise<void>): void {
    this.cleanups.push(fn);
  }

  check(name: string, expected: string, observed: string, pass: boolean): void {
    this.rows.push({ name, expected, observed, pass });
  }

  /** Kills every process this scenario started (tracked, or naming its directory), closes servers, deletes files. */
  async cleanup(): Promise<string[]> {
    const leaked: string[] = [];
    for (const pid of await pidsRunning(this.root)) {
      leaked.push(String(pid));
      killQuietly(pid);
    }
    for (const pid of this.pids) if (await isAlive(pid)) killQuietly(pid);
    for (const group of this.groups) killGroup(group);
    for (const fn of this.cleanups) await fn().catch(() => {});
    await Promise.all(this.servers.map((s) => s.close().catch(() => {})));
    await rm(this.root, { recursive: true, force: true }).catch(() => {});
    return leaked;
  }
}

let active: { ctx: CaseContext; controller: AbortController } | undefined;

/** For Ctrl-C of the whole run: stops the scenario in progress and removes everything it started. */
export async function abortActiveScenario(): Promise<void> {
  if (!active) return;
  active.controller.abort();
  await active.ctx.cleanup();
}

/** Runs one scenario in its own temp directory; a crash or a timeout becomes a failed row. */
export async function runScenario(scenario: Scenario): Promise<Row[]> {
  const slug = scenario.name.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
  const root = await realpath(await mkdtemp(join(tmpdir(), `castra-faults-${slug}-`)));
  const controller = new AbortController();
  const ctx = new CaseContext(root, controller.signal);
  active = { ctx, controller };
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new Error(`timed out after ${scenario.timeoutMs / 1000} s`));
    }, scenario.timeoutMs);
  });
  try {
    await Promise.race([scenario.run(ctx), timedOut]);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    ctx.check(`${scenario.name}: scenario`, "runs to the end", `crashed: ${oneLine(message)}`, false);
  } finally {
    clearTimeout(timer);
  }
  const leaked = await ctx.cleanup();
  active = undefined;
  // After a clean run, a process still naming the scenario's directory is something castra left behind.
  if (leaked.length > 0 && ctx.rows.every((r) => r.pass)) {
    ctx.check(
      `${scenario.name}: nothing left running`,
      "no process left",
      `killed ${leaked.join(", ")}`,
      false,
    );
  }
  return ctx.rows;
}

/** Exit status as a short phrase: "exit 65" or "killed by SIGKILL". */
export function exitOf(result: RunResult): string {
  return result.code === null ? `killed by ${result.signal}` : `exit ${result.code}`;
}

export function oneLine(text: string, max = 160): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** The first `error:` line castra printed, for the observed column. */
export function errorLine(result: RunResult): string {
  const line = result.stderr.split("\n").find((l) => l.startsWith("error:"));
  return oneLine(line ?? result.stderr.split("\n").find(Boolean) ?? "(no output)", 110);
}

/** castra prints a stack trace only with CASTRA_DEBUG=1, and "failed unexpectedly" only for a bug. */
export function hasStackTrace(text: string): boolean {
  return /^\s+at .+(:\d+:\d+\)?|\(native\)|<anonymous>\)?)$/m.test(text) || /failed unexpectedly/.test(text);
}

/** Every file and directory under `dir` (relative paths), for "nothing else was written" checks. */
export async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const entries = await readdir(join(dir, prefix), { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const e of entries) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(rel);
    if (e.isDirectory()) out.push(...(await listTree(dir, rel)));
  }
  return out.sort();
}

/** Entries under `dir` that someone other than their owner may write (group or other write bit), with modes. */
export async function writableByOthers(dir: string): Promise<string[]> {
  const loose: string[] = [];
  for (const rel of ["", ...(await listTree(dir))]) {
    const info = await lstat(join(dir, rel)).catch(() => undefined);
    if (!info || info.isSymbolicLink() || (info.mode & 0o022) === 0) continue;
    loose.push(`${rel || "."} ${(info.mode & 0o777).toString(8)}`);
  }
  return loose;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 50 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function until(
  condition: () => Promise<boolean> | boolean,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(50);
  }
  return false;
}
