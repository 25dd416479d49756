import { fstatSync, writeSync } from "node:fs";
import type { CastraError } from "../errors.js";
import { type Colors, makeColors } from "./colors.js";

/** One output stream with what commands need to know about it. */
export interface OutStream {
  write(text: string): void;
  readonly isTTY: boolean;
  readonly color: Colors;
  readonly columns: number;
}

/** A block of lines redrawn in place on a TTY (one per VM or download); silent elsewhere. */
export interface LiveRegion {
  set(key: string, line: string): void;
  /** Leaves the last drawn lines on screen and stops redrawing. */
  done(): void;
}

/** The terminal, injected into every command so commands are tested without one. */
export interface IO {
  readonly out: OutStream;
  readonly err: OutStream;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** A line of ordinary output on stdout. */
  print(line: string): void;
  /** A line about progress on stderr, so stdout stays machine-readable. */
  info(line: string): void;
  success(line: string): void;
  warn(line: string): void;
  error(err: CastraError, debug?: boolean): void;
  live(): LiveRegion;
}

export function colorEnabled(isTTY: boolean, env: NodeJS.ProcessEnv, noColorFlag = false): boolean {
  if (noColorFlag) return false;
  const force = env.FORCE_COLOR;
  // FORCE_COLOR=0 (or false) is a request for no colour, as in Node and chalk.
  if (force === "0" || force === "false") return false;
  if (force !== undefined && force !== "") return true;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  return isTTY && env.TERM !== "dumb";
}

export function makeStream(
  write: (text: string) => void,
  isTTY: boolean,
  color: boolean,
  columns = 80,
): OutStream {
  return { write, isTTY, color: makeColors(color), columns };
}

export class StreamIO implements IO {
  constructor(
    readonly out: OutStream,
    readonly err: OutStream,
    readonly env: NodeJS.ProcessEnv,
    readonly cwd: string,
  ) {}

  print(line: string): void {
    this.out.write(`${line}\n`);
  }

  info(line: string): void {
    this.err.write(`${line}\n`);
  }

  success(line: string): void {
    const c = this.err.color;
    this.err.write(`${c.green("✓")} ${line}\n`);
  }

  warn(line: string): void {
    const c = this.err.color;
    this.err.write(`${c.yellow("warning:")} ${line}\n`);
  }

  error(err: CastraError, debug = false): void {
    const c = this.err.color;
    const lines = [`${c.red(c.bold("error:"))} ${err.headline}`];
    if (err.detail) lines.push(...err.detail.split("\n").map((l) => `  ${l}`));
    if (err.hint) lines.push(`${c.cyan("hint:")} ${err.hint}`);
    if (debug && err.stack) lines.push(c.dim(err.stack));
    if (debug && err.cause instanceof Error && err.cause.stack)
      lines.push(c.dim(`cause: ${err.cause.stack}`));
    this.err.write(`${lines.join("\n")}\n`);
  }

  live(): LiveRegion {
    return this.err.isTTY ? new TtyLiveRegion(this.err) : { set() {}, done() {} };
  }
}

class TtyLiveRegion implements LiveRegion {
  private readonly lines = new Map<string, string>();
  private drawn = 0;
  private finished = false;

  constructor(private readonly stream: OutStream) {}

  set(key: string, line: string): void {
    if (this.finished) return;
    this.lines.set(key, line);
    this.redraw();
  }

  done(): void {
    this.finished = true;
  }

  private redraw(): void {
    const width = Math.max(20, this.stream.columns - 1);
    let text = this.drawn > 0 ? `\x1b[${this.drawn}F` : "";
    for (const line of this.lines.values()) text += `\x1b[2K${truncate(line, width)}\n`;
    this.drawn = this.lines.size;
    this.stream.write(text);
  }
}

const ANSI_SGR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

function truncate(line: string, width: number): string {
  // Count visible characters only, so colour codes do not shorten the line.
  const visible = line.replace(ANSI_SGR, "");
  return visible.length <= width ? line : `${visible.slice(0, width - 1)}…`;
}

export function processIO(noColor = false): IO {
  const env = process.env;
  return new StreamIO(processStream(1, env, noColor), processStream(2, env, noColor), env, process.cwd());
}

/**
 * stdout or stderr. Only a character device can be a terminal: a pipe or a file is written with `writeSync`
 * and never touches `process.stdout`, whose stream (and the tty and net modules behind it) costs a short
 * command like `castra status` several milliseconds of its start-up.
 */
function processStream(fd: 1 | 2, env: NodeJS.ProcessEnv, noColor: boolean): OutStream {
  if (!isCharacterDevice(fd)) return makeStream(fdWriter(fd), false, colorEnabled(false, env, noColor));
  const s = fd === 1 ? process.stdout : process.stderr;
  const isTTY = Boolean(s.isTTY);
  // A pty may report 0 columns: that means unknown, not "nothing fits".
  return makeStream((text) => s.write(text), isTTY, colorEnabled(isTTY, env, noColor), s.columns || 80);
}

function isCharacterDevice(fd: number): boolean {
  try {
    return fstatSync(fd).isCharacterDevice();
  } catch {
    return true; // Let Node's own stream decide.
  }
}

/** Synchronous writes to a pipe or file; one the reader closed (EPIPE) ends output quietly. */
function fdWriter(fd: 1 | 2): (text: string) => void {
  let fallback: NodeJS.WriteStream | undefined;
  let closed = false;
  return (text) => {
    if (closed) return;
    if (fallback) return void fallback.write(text);
    let bytes = Buffer.from(text);
    while (bytes.length > 0) {
      try {
        bytes = bytes.subarray(writeSync(fd, bytes));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EPIPE") {
          closed = true;
          return;
        }
        if (code !== "EAGAIN") throw err;
        // A non-blocking pipe that is full: Node's stream queues the rest and drains it before exit.
        fallback = fd === 1 ? process.stdout : process.stderr;
        return void fallback.write(bytes);
      }
    }
  };
}

/** An IO that records everything, for tests. */
export interface CapturedIO extends IO {
  readonly stdout: () => string;
  readonly stderr: () => string;
}

export function captureIO(options: { cwd: string; env?: NodeJS.ProcessEnv; isTTY?: boolean }): CapturedIO {
  let out = "";
  let err = "";
  const tty = options.isTTY ?? false;
  const env = options.env ?? {};
  const io = new StreamIO(
    makeStream((t) => (out += t), tty, colorEnabled(tty, env)),
    makeStream((t) => (err += t), tty, colorEnabled(tty, env)),
    env,
    options.cwd,
  );
  return Object.assign(io, { stdout: () => out, stderr: () => err });
}
