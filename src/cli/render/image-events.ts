import { isAbsolute, relative } from "node:path";
import { formatBytes } from "../../host/bytes.js";
import { describeKind } from "../../images/catalog.js";
import type { ImageEvent } from "../../images/events.js";
import type { IO } from "../io.js";
import { formatSeconds, ProgressBar, rate } from "./progress.js";

/**
 * Renders image pipeline events for people: a live progress bar on a TTY, otherwise one plain line per phase
 * so CI logs stay readable. `castra images pull` and `castra up` share it.
 */
export function renderImageEvents(io: IO): (event: ImageEvent) => void {
  let bar: ProgressBar | undefined;
  let cacheHit = false;
  let lastStallLine = 0;
  const stopBar = () => {
    bar?.stop();
    bar = undefined;
  };
  return (e) => {
    switch (e.type) {
      case "lock-wait":
        return io.info(`Waiting for another castra (pid ${e.pid}) that is preparing ${e.image}`);
      case "cache-hit":
        cacheHit = true;
        return io.info(`Cache hit: ${e.image}`);
      case "rebuild":
        return io.info(`Rebuilding ${e.image}: ${e.reason}`);
      case "download-start":
        if (e.attempt === 1)
          io.info(`Downloading ${describeKind(e.artifact)} (${formatBytes(e.bytes)}) from ${e.url}`);
        if (e.resumeFrom > 0) io.info(`Resuming download at ${formatBytes(e.resumeFrom)}`);
        if (io.err.isTTY) bar = new ProgressBar(io, describeKind(e.artifact), e.resumeFrom);
        return;
      case "download-restart":
        stopBar();
        io.info(`Cannot resume (${e.reason}): downloading from the start`);
        if (io.err.isTTY) bar = new ProgressBar(io, describeKind(e.artifact), 0);
        return;
      case "progress":
        if (bar) return bar.update(e.received, e.total, e.idleMs);
        // Without a terminal there is no bar: a long silence still gets a line, every 10 s of it.
        if (e.idleMs >= 10_000 && Math.floor(e.idleMs / 10_000) !== lastStallLine) {
          lastStallLine = Math.floor(e.idleMs / 10_000);
          io.info(
            `no data for ${lastStallLine * 10} s (${formatBytes(e.received)} of ${formatBytes(e.total)} received)`,
          );
        } else if (e.idleMs < 10_000) lastStallLine = 0;
        return;
      case "store-hit":
        return io.info(`Found in the download cache: ${describeKind(e.artifact)} (${formatBytes(e.bytes)})`);
      case "store-wait":
        return io.info(
          `Waiting for another castra (pid ${e.pid}) that is downloading the same ${describeKind(e.artifact)}`,
        );
      case "store-damaged":
        return io.warn(
          `the download cache's copy of the ${describeKind(e.artifact)} is damaged (${e.problem}): downloading it again`,
        );
      case "store-unusable":
        return io.warn(
          `the download cache ${e.store} is not usable (${e.reason}): downloads go to the project only`,
        );
      case "store-add":
        return; // the image-manager log records it; the user sees the cache at work in the next project
      case "download-retry":
        stopBar();
        return io.info(`Retrying in ${formatSeconds(e.delayMs / 1000)} (${e.reason})`);
      case "download-done":
        stopBar();
        return io.info(`Downloaded in ${formatSeconds(e.seconds)} (${rate(e.bytes, e.seconds)})`);
      case "verified":
        return io.info(`Verified sha256 of ${describeKind(e.artifact)}`);
      case "transform":
        return io.info(e.summary);
      case "ready":
        if (!cacheHit) io.success(`${e.image} ready in ${shortPath(e.dir, io.cwd)}`);
        return;
    }
  };
}

/** A path relative to the working directory when it is inside it. */
function shortPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}
