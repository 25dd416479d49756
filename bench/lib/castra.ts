import { mkdir, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atCleanup, killPid, mustRun, type RunOptions, timed } from "./procs.js";

/** What every row gets: the castra under test, a scratch directory and how many runs to take. */
export interface Bench {
  /** The bundle built for this run (a private copy of dist/castra.cjs). */
  castraJs: string;
  work: string;
  runs: number;
  warmup: number;
  log(message: string): void;
}

/** `node castra.cjs ...args` */
export function castraArgv(bench: Bench, args: string[]): string[] {
  return [process.execPath, bench.castraJs, ...args];
}

/** TCG always (KVM guests hang here), no per-user download store, no colour. */
export function castraEnv(catalog?: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NO_COLOR: "1",
    FORCE_COLOR: "",
    CASTRA_ACCEL: "tcg",
    CASTRA_CACHE_DIR: "off",
    // The bench's projects stay out of the user's `castra list`.
    XDG_STATE_HOME: join(tmpdir(), "castra-bench-state"),
    ...(catalog ? { CASTRA_CATALOG: catalog } : {}),
  };
}

export function runCastra(bench: Bench, args: string[], options: RunOptions) {
  return timed(castraArgv(bench, args), options);
}

export function mustCastra(bench: Bench, args: string[], options: RunOptions) {
  return mustRun(castraArgv(bench, args), options);
}

/** A fresh project directory; whatever QEMU it starts is killed at cleanup even if `down` never ran. */
export async function newProject(bench: Bench, name: string): Promise<string> {
  const dir = join(bench.work, name);
  await mkdir(dir, { recursive: true });
  atCleanup(() => killProjectQemus(dir));
  return dir;
}

/** The run record `castra up` wrote for a VM: its QEMU pid and the exact argv. */
export async function runRecord(dir: string, vm: string): Promise<{ pid: number; argv: string[] }> {
  return JSON.parse(await readFile(join(dir, ".castra", "run", `${vm}.pid`), "utf8"));
}

/** Stops the project's VMs quickly (the guest gets `seconds` to power off, then SIGTERM). */
export async function down(bench: Bench, dir: string, env: NodeJS.ProcessEnv, seconds = 1): Promise<void> {
  await mustCastra(bench, ["down", "--timeout", String(seconds)], { cwd: dir, env });
}

/** SIGKILL, by pid, every QEMU a project's pid files still name. */
async function killProjectQemus(dir: string): Promise<void> {
  const runDir = join(dir, ".castra", "run");
  const names = await readdir(runDir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith(".pid") && n !== "broker.pid")) {
    const record = await runRecord(dir, name.slice(0, -4)).catch(() => undefined);
    if (!record) continue;
    const cmdline = await readFile(`/proc/${record.pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.startsWith(`${record.argv[0]}\0`)) killPid(record.pid);
  }
}
