import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";

/** How one timed process ended. */
export interface Finished {
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Called right after spawn (to sample /proc/<pid>/status while it runs). */
  onSpawn?: (child: ChildProcess) => void;
  /** Descriptors handed to the child as 3, 4, … (QEMU's `-add-fd` files). */
  fds?: number[];
}

/** Cleanups run in reverse order at the end, on Ctrl-C and on a crash: the bench leaves nothing behind. */
const cleanups: (() => Promise<void> | void)[] = [];
const livePids = new Set<number>();

export function atCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export async function cleanUp(): Promise<void> {
  for (const pid of livePids) killPid(pid);
  livePids.clear();
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`bench: cleanup failed: ${(err as Error).message}\n`);
    }
  }
}

export function killPid(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/**
 * Runs `argv` to completion and returns its wall time, from spawn() to exit, in milliseconds.
 * stdout goes to /dev/null (so terminal speed never counts); stderr is kept for failure messages.
 */
export function timed(argv: string[], options: RunOptions = {}): Promise<Finished> {
  const [command, ...args] = argv as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    const pid = child.pid;
    if (pid) livePids.add(pid);
    options.onSpawn?.(child);
    let stderr = "";
    child.stderr?.on("data", (chunk) => {
      stderr += chunk;
    });
    let ms = 0;
    child.on("error", reject);
    child.on("exit", () => {
      ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (pid) livePids.delete(pid);
    });
    // "close" follows "exit" once stderr has drained: that moment is not part of the measured time.
    child.on("close", (code, signal) => resolve({ ms, code, signal, stderr }));
  });
}

/** Like `timed`, but a non-zero exit is an error that shows what the command printed. */
export async function mustRun(argv: string[], options: RunOptions = {}): Promise<Finished> {
  const result = await timed(argv, options);
  if (result.code !== 0) {
    const tail = result.stderr.trim().split("\n").slice(-12).join("\n");
    throw new Error(`${argv.join(" ")} exited ${result.code ?? result.signal}:\n${tail}`);
  }
  return result;
}

/** Starts a long-running process (a server, a bare QEMU) that cleanUp() kills if nothing else did. */
export function startDetached(argv: string[], options: RunOptions = {}): ChildProcess {
  const [command, ...args] = argv as [string, ...string[]];
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", "ignore", "pipe", ...(options.fds ?? [])],
  });
  if (child.pid) livePids.add(child.pid);
  child.on("exit", () => {
    if (child.pid) livePids.delete(child.pid);
  });
  return child;
}

/** Kills a child by pid and resolves once it has exited. */
export function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    if (child.pid) killPid(child.pid);
  });
}

/** The peak resident set (VmHWM) of a live process in bytes, or undefined once it has exited. */
export async function peakRss(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => undefined);
  const kb = status && /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
  return kb ? Number(kb) * 1024 : undefined;
}

/** The first line a command prints (`qemu-system-x86_64 --version`), for the machine description. */
export async function firstLine(argv: string[]): Promise<string> {
  const [command, ...args] = argv as [string, ...string[]];
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.on("error", () => resolve("not installed"));
    child.on("close", () => resolve(out.split("\n")[0]?.trim() || "unknown"));
  });
}
