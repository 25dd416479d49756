import { lstat } from "node:fs/promises";
import type { Project, VmConfig } from "../config/model.js";
import { readFrom, readTail } from "../host/log-tail.js";
import { projectPaths, vmPaths } from "./paths.js";

/** One log file and the prefix its lines carry in `castra logs`. */
export interface LogSource {
  /** "host-broker", "image-manager", "vm:devbox:qemu", "vm:devbox:serial", "vm:devbox:metadata", "vm:devbox:provision". */
  label: string;
  path: string;
}

export interface LogLine {
  time: Date;
  label: string;
  text: string;
}

/**
 * Broker and image-manager logs when the project can have them, then each VM's QEMU, serial and metadata
 * logs (one line per guest request to 169.254.169.254) and its provisioning output.
 */
export function logSources(project: Project, vms: readonly VmConfig[] = project.vms): LogSource[] {
  const paths = projectPaths(project);
  const sources: LogSource[] = [];
  // The project's own logs belong to every VM: shown unless some VMs were picked out.
  const whole = vms.length === project.vms.length;
  if (whole && project.broker) sources.push({ label: "host-broker", path: paths.brokerLog });
  if (whole && project.vms.some((vm) => vm.source.kind === "managed")) {
    sources.push({ label: "image-manager", path: paths.imageManagerLog });
  }
  for (const vm of vms) {
    const p = vmPaths(project, vm);
    sources.push(
      { label: `vm:${vm.name}:qemu`, path: p.qemuLog },
      { label: `vm:${vm.name}:serial`, path: p.serialLog },
      { label: `vm:${vm.name}:metadata`, path: p.metadataLog },
      { label: `vm:${vm.name}:provision`, path: p.provisionLog },
    );
  }
  return sources;
}

const LEADING_TIMESTAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) /;

/**
 * Timestamps for lines read from disk: a line's own leading ISO timestamp (broker, image-manager and
 * castra's lines in the QEMU log), else that of the nearest timestamped line above it, else the file's
 * modification time (the serial console and QEMU's own messages carry none).
 */
export function stampLines(label: string, lines: string[], fallback: Date): LogLine[] {
  let current: Date | undefined;
  const stamped = lines.map((raw) => {
    const match = LEADING_TIMESTAMP.exec(raw);
    if (match?.[1]) {
      current = new Date(match[1]);
      return { time: current, label, text: raw.slice(match[0].length) };
    }
    return { time: current, label, text: raw };
  });
  return stamped.map((line) => ({ ...line, time: line.time ?? fallback }));
}

export interface SourceTail {
  lines: LogLine[];
  /** Where the tail ends: following the file resumes here, so no line is lost or shown twice. */
  endOffset: number;
}

/** The last `count` lines of a source, or undefined when its file does not exist yet. */
export async function tailSource(source: LogSource, count: number): Promise<SourceTail | undefined> {
  const info = await logFile(source.path);
  if (!info) return undefined;
  const tail = await readTail(source.path, count).catch(() => undefined);
  if (!tail) return undefined;
  return { lines: stampLines(source.label, tail.lines, info.mtime), endOffset: tail.size };
}

/** Lines of every source interleaved by time; lines with equal times keep their file order. */
export function mergeByTime(groups: LogLine[][]): LogLine[] {
  return groups.flat().sort((a, b) => a.time.getTime() - b.time.getTime());
}

export type FollowUpdate =
  | { kind: "line"; line: LogLine }
  | { kind: "appeared"; source: LogSource }
  | { kind: "restarted"; source: LogSource };

/** A log's size and time, or undefined when it is missing or a link (logs are never read through one). */
async function logFile(path: string) {
  const info = await lstat(path).catch(() => undefined);
  return info?.isSymbolicLink() ? undefined : info;
}

/** A line without its newline is shown after this long, so prompts like "login: " appear. */
const PARTIAL_LINE_MS = 1000;

/** Follows one growing file from `offset`; lines without their own timestamp get the time they were read. */
export class SourceFollower {
  private pending = Buffer.alloc(0);
  private pendingSince = 0;

  /** `offset` undefined: the file does not exist yet and is read from its start once it appears. */
  constructor(
    readonly source: LogSource,
    private offset: number | undefined,
  ) {}

  async poll(now = new Date()): Promise<FollowUpdate[]> {
    const updates: FollowUpdate[] = [];
    const info = await logFile(this.source.path);
    if (!info) return updates;
    if (this.offset === undefined) {
      updates.push({ kind: "appeared", source: this.source });
      this.offset = 0;
    } else if (info.size < this.offset) {
      // QEMU truncates the serial log on every boot.
      updates.push({ kind: "restarted", source: this.source });
      this.offset = 0;
      this.pending = Buffer.alloc(0);
    }
    while (info.size > this.offset) {
      const chunk = await readFrom(this.source.path, this.offset);
      if (chunk.length === 0) break;
      this.offset += chunk.length;
      if (this.pending.length === 0) this.pendingSince = now.getTime();
      this.pending = Buffer.concat([this.pending, chunk]);
    }
    const lines: string[] = [];
    // Split on bytes, so a character cut between two reads is decoded whole.
    for (let nl = this.pending.indexOf(0x0a); nl >= 0; nl = this.pending.indexOf(0x0a)) {
      lines.push(this.pending.subarray(0, nl).toString("utf8").replace(/\r$/, ""));
      this.pending = this.pending.subarray(nl + 1);
      this.pendingSince = now.getTime();
    }
    if (this.pending.length > 0 && now.getTime() - this.pendingSince >= PARTIAL_LINE_MS) {
      lines.push(this.pending.toString("utf8"));
      this.pending = Buffer.alloc(0);
    }
    for (const line of stampLines(this.source.label, lines, now)) updates.push({ kind: "line", line });
    return updates;
  }
}
