import { formatBytes } from "../../host/bytes.js";
import type { IO, LiveRegion } from "../io.js";

/** Progress for people: durations, rates and live bars, shared by every command that waits. */

const BAR_WIDTH = 24;

/** "3.2 s", "1 min 05 s" */
export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, "0")} s`;
}

/** Silence shorter than this is just the network; longer, the bar says so. */
export const STALL_SHOWN_MS = 2000;

export function rate(bytes: number, seconds: number): string {
  return `${formatBytes(Math.round(bytes / Math.max(seconds, 0.001)))}/s`;
}

/** One download's bar on a TTY: bytes, rate and ETA, redrawn in place. */
export class ProgressBar {
  private readonly region: LiveRegion;
  private readonly started = performance.now();

  constructor(
    io: IO,
    private readonly label: string,
    private readonly from: number,
  ) {
    this.region = io.live();
  }

  update(received: number, total: number, idleMs = 0): void {
    const seconds = (performance.now() - this.started) / 1000;
    const perSecond = (received - this.from) / Math.max(seconds, 0.001);
    const filled = Math.round((received / total) * BAR_WIDTH);
    const bar = `${"█".repeat(filled)}${"░".repeat(BAR_WIDTH - filled)}`;
    const eta = perSecond > 0 ? `ETA ${formatSeconds((total - received) / perSecond)}` : "";
    const speed = seconds > 0.2 ? rate(received - this.from, seconds) : "";
    // A stalled server: say how long it has been silent instead of a rate and an ETA that no longer mean much.
    const stalled = idleMs >= STALL_SHOWN_MS ? `no data for ${Math.floor(idleMs / 1000)} s` : "";
    const parts = [
      this.label,
      bar,
      `${formatBytes(received)} / ${formatBytes(total)}`,
      ...(stalled ? [stalled] : [speed, eta]),
    ];
    this.region.set("bar", parts.filter(Boolean).join("  "));
  }

  stop(): void {
    this.region.done();
  }
}
