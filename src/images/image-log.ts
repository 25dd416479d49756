import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { CastraError } from "../errors.js";
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

export function openImageLog(stateDir: string): ImageLog {
  const dir = join(stateDir, "logs");
  const file = join(dir, IMAGE_LOG);
  let ready = false;
  const lastStep = new Map<string, number>();
  // Logging is best effort: a log that cannot be written never fails the image itself.
  const write = (line: string) => {
    try {
      if (!ready) mkdirSync(dir, { recursive: true });
      ready = true;
      // Events and errors carry redacted URLs already; this catches any a cause's message adds.
      appendFileSync(file, `${new Date().toISOString()} ${redactUrl(line)}\n`);
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
