import { readFile } from "node:fs/promises";

/** Is `pid` a live process (a zombie counts as gone)? */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  // "pid (comm) S ...": the state letter follows the last ")"; Z is an exited child nobody reaped yet.
  return stat === undefined || stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
}

/** The argv a live process was started with, or undefined when it is gone or cannot be read. */
export async function processArgv(pid: number): Promise<string[] | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  if (process.platform === "linux") {
    const raw = await readFile(`/proc/${pid}/cmdline`).catch(() => undefined);
    if (!raw || raw.length === 0) return undefined;
    const text = raw.toString("utf8");
    return (text.endsWith("\0") ? text.slice(0, -1) : text).split("\0");
  }
  // Elsewhere `ps` prints the command line joined by spaces: compared joined, too.
  // Loaded here only: child_process costs every command its start-up time.
  const { runTool } = await import("./tools.js");
  const out = await runTool("ps", ["-o", "args=", "-p", String(pid)]).catch(() => undefined);
  const line = out?.stdout.trim();
  return line ? [line] : undefined;
}

/** True when `pid` runs exactly `argv`: a pid reused by another program never matches. */
export async function runsArgv(pid: number, argv: readonly string[]): Promise<boolean> {
  const actual = await processArgv(pid);
  if (!actual) return false;
  if (actual.length === 1 && argv.length > 1) return actual[0] === argv.join(" ");
  return actual.length === argv.length && actual.every((arg, i) => arg === argv[i]);
}

/** Whether `argv` holds every group as consecutive items, e.g. `["-name", "guest=castra:demo:devbox"]`. */
export function carriesAll(argv: readonly string[], groups: readonly (readonly string[])[]): boolean {
  // `ps` (outside Linux) gives one line: each group must appear in it, space-joined.
  if (argv.length === 1) return groups.every((g) => ` ${argv[0]} `.includes(` ${g.join(" ")} `));
  return groups.every((group) => argv.some((_, start) => group.every((item, i) => argv[start + i] === item)));
}

/**
 * The argv `pid` runs, when it carries every group of one of `identities` (options derived from castra's
 * configuration, never from a file a stranger could plant); undefined for any other process or none.
 */
export async function argvCarrying(
  pid: number,
  identities: readonly (readonly (readonly string[])[])[],
): Promise<string[] | undefined> {
  const argv = await processArgv(pid);
  return argv && identities.some((identity) => carriesAll(argv, identity)) ? argv : undefined;
}

/** Waits until `pid` no longer runs `argv`; resolves true when it exited within `timeoutMs`. */
export async function waitForExit(
  pid: number,
  argv: readonly string[],
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await runsArgv(pid, argv))) return true;
    if (Date.now() >= deadline || signal?.aborted) return false;
    await sleep(Math.min(200, Math.max(10, deadline - Date.now())));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Sends `signal` only if `pid` still runs `argv`; returns whether it was sent. */
export async function signalIfOurs(
  pid: number,
  argv: readonly string[],
  signal: NodeJS.Signals,
): Promise<boolean> {
  if (!(await runsArgv(pid, argv))) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
