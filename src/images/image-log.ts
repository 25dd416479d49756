import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { CastraError } from "../errors.js";
import { OPEN_PRIVATE } from "../host/private-files.js";
import type { ImageEvent } from "./events.js";
import { redactUrl } from "./redact-url.js";

export const IMAGE_LOG = "image-manager.log";

/** `.castra/logs/image-manager.log`: one timestamped line per pipeline event, created on first use. */
export interface ImageLog {
  event(e: ImageEvent): void;
  failure(image: string, err: unknown): void;
}

/** Progress is logged at each tenth of the download, not at every event, so the log stays readable. */
const PROGRESS_STEPS = 10;

/** `.castra/logs/image-manager.log` */
export function imageLogPath(stateDir: string): string {
  return join(stateDir, "logs", IMAGE_LOG);
}

export function openImageLog(stateDir: string): ImageLog {
  const file = imageLogPath(stateDir);
  const dir = dirname(file);
  let ready = false;
  const lastStep = new Map<string, number>();
  // Logging is best effort: a log that cannot be written never fails the image itself.
  const write = (line: string) => {
    try {
      if (!ready) mkdirSync(dir, { recursive: true, mode: 0o700 });
      ready = true;
      // Never through a link (ensureImage refuses one before the first line). Events and errors carry
      // redacted URLs already; this catches any a cause's message adds.
      const fd = openSync(file, OPEN_PRIVATE.append, 0o600);
      try {
        writeSync(fd, `${new Date().toISOString()} ${redactUrl(line)}\n`);
      } finally {
        closeSync(fd);
      }
    } catch {}
  };
  return {
    event(e) {
      if (e.type === "progress") {
        const key = `${e.image} ${e.artifact}`;
        const step = Math.floor((e.received / e.total) * PROGRESS_STEPS);
        if (step === lastStep.get(key)) return;
        lastStep.set(key, step);
      }
      write(formatEvent(e));
    },
    failure(image, err) {
      const text =
        err instanceof CastraError ? `${err.headline}${err.detail ? `: ${err.detail}` : ""}` : String(err);
      write(`${image} failed exit=${err instanceof CastraError ? err.exitCode : 70} ${JSON.stringify(text)}`);
    },
  };
}

/** "alpine-minimal@v1 download-start artifact=root_disk url=https://… bytes=127926784 resume_from=0" */
export function formatEvent(e: ImageEvent): string {
  // `files` repeats `dir` plus the catalog's names: left out to keep the line short.
  const fields = Object.entries(e).filter(([key]) => key !== "type" && key !== "image" && key !== "files");
  const pairs = fields.map(([key, value]) => {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    return `${snake}=${/[\s"]/.test(text) ? JSON.stringify(text) : text}`;
  });
  return [e.image, e.type, ...pairs].join(" ");
}
