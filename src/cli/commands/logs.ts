import { displayPath } from "../../config/load.js";
import {
  type LogLine,
  type LogSource,
  logSources,
  mergeByTime,
  SourceFollower,
  tailSource,
} from "../../vm/logs.js";
import type { CommandContext } from "../context.js";
import type { IO } from "../io.js";
import { resolveProject } from "../project.js";
import { selectVms } from "../targets.js";
import type { LogsOptions } from "./specs.js";

/** Lines shown per source when --tail is not given. */
export const DEFAULT_TAIL_LINES = 1000;
const FOLLOW_POLL_MS = 250;

/**
 * `castra logs`: the last lines of every source, merged by time and prefixed with their source;
 * `--follow` then streams new lines (and files that appear later) until Ctrl-C, which exits 0.
 */
export async function runLogs(opts: LogsOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const project = await resolveProject(ctx);
  const sources = logSources(project, selectVms(project, opts.vms, "logs"));
  const count = opts.tail ?? DEFAULT_TAIL_LINES;
  const tails = await Promise.all(sources.map((source) => tailSource(source, count)));
  const missing = sources.filter((_, i) => tails[i] === undefined);
  for (const source of missing) io.info(`[${source.label}] no log yet (${displayPath(source.path, io.cwd)})`);
  // The last N lines of the merged stream, not N of each source.
  const merged = mergeByTime(tails.map((t) => t?.lines ?? []));
  for (const line of merged.slice(Math.max(0, merged.length - count))) printLine(io, line);
  if (!opts.follow) return 0;

  const followers = sources.map((source, i) => new SourceFollower(source, tails[i]?.endOffset));
  while (!ctx.signal.aborted) {
    for (const follower of followers) {
      for (const update of await follower.poll()) {
        if (update.kind === "line") printLine(io, update.line);
        else io.info(notice(io, update.source, update.kind));
      }
    }
    await sleepUnlessAborted(FOLLOW_POLL_MS, ctx.signal);
  }
  return 0;
}

function printLine(io: IO, line: LogLine): void {
  const c = io.out.color;
  io.print(`${c.dim(line.time.toISOString())} ${c.cyan(`[${line.label}]`)} ${line.text}`);
}

function notice(io: IO, source: LogSource, kind: "appeared" | "restarted"): string {
  const what = kind === "appeared" ? "log appeared" : "log restarted (a new boot)";
  return `[${source.label}] ${what}: ${displayPath(source.path, io.cwd)}`;
}

function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
