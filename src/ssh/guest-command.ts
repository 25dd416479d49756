import { spawn } from "node:child_process";
import { StringDecoder } from "node:string_decoder";
import { sleep } from "../host/process.js";
import { buildSshArgs, type SshTarget } from "./client.js";

/**
 * Runs castra's own scripts in a guest over SSH, non-interactively. The command line ssh sends is always a
 * constant of castra's; whatever comes from castra.toml (paths, a provisioning command, a script's bytes)
 * travels on stdin as data, so no config value is ever parsed by a shell as part of a command line.
 */

export interface GuestCommand {
  ssh: string;
  target: Omit<SshTarget, "command">;
  /** A constant shell script (never built from config values); it reads its data from stdin. */
  script: string;
  stdin?: string | Buffer;
  /** Run the script as root: directly when the login user is root, else through `doas -n` or `sudo -n`. */
  asRoot: boolean;
  /** Every line the script (or ssh) writes, stdout and stderr alike, as it comes. */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
  /** Until this time (ms since the epoch) a failure of ssh's own connection is retried every second. */
  connectUntil?: number;
}

export interface GuestCommandResult {
  /** The script's exit status; 255 is ssh's own failure (no connection, key refused). */
  code: number;
  /** The last lines it printed. */
  tail: string[];
}

const TAIL_LINES = 20;
/** ssh's own words when it never got to run the command: safe to try again. */
const NOT_CONNECTED =
  /Connection (refused|reset|closed|timed out)|kex_exchange_identification|Permission denied \(|No route to host|banner exchange/;

/** `$1` and `$2` of every script: the login user's uid and gid (the owner a writable share is given to). */
const AS_ROOT =
  'u=$(id -u) g=$(id -g); if [ "$u" = 0 ]; then set --; elif command -v doas >/dev/null 2>&1; then set -- doas -n; ' +
  "elif command -v sudo >/dev/null 2>&1; then set -- sudo -n; " +
  'else echo "castra: the login user is not root and the guest has neither doas nor sudo" >&2; exit 126; fi; ';

/** The constant command line for `script`, run by the login user's shell. */
export function guestCommandLine(script: string, asRoot: boolean): string {
  const quoted = `'${script.replaceAll("'", `'\\''`)}'`;
  return asRoot
    ? `${AS_ROOT}exec "$@" sh -c ${quoted} castra "$u" "$g"`
    : `exec sh -c ${quoted} castra "$(id -u)" "$(id -g)"`;
}

export async function runGuestCommand(command: GuestCommand): Promise<GuestCommandResult> {
  for (;;) {
    const result = await runOnce(command);
    const retry =
      result.code === 255 &&
      command.connectUntil !== undefined &&
      Date.now() < command.connectUntil &&
      !command.signal?.aborted &&
      NOT_CONNECTED.test(result.tail.join("\n")) &&
      !result.ran;
    if (!retry) return { code: result.code, tail: result.tail };
    await sleep(1000);
  }
}

function runOnce(command: GuestCommand): Promise<GuestCommandResult & { ran: boolean }> {
  const args = buildSshArgs({
    ...command.target,
    command: [guestCommandLine(command.script, command.asRoot)],
  });
  return new Promise((resolve, reject) => {
    const child = spawn(command.ssh, args, { stdio: ["pipe", "pipe", "pipe"] });
    const tail: string[] = [];
    let ran = false;
    const take = (line: string) => {
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      command.onLine?.(line);
    };
    const out = lineSplitter((line) => {
      ran = true;
      take(line);
    });
    const err = lineSplitter(take);
    child.stdout.on("data", out.push);
    child.stderr.on("data", err.push);
    const abort = () => child.kill("SIGTERM");
    command.signal?.addEventListener("abort", abort, { once: true });
    child.once("error", reject);
    // The guest may close its end early (a script that reads nothing): not our failure.
    child.stdin.on("error", () => {});
    child.stdin.end(command.stdin ?? "");
    child.once("close", (code, signal) => {
      command.signal?.removeEventListener("abort", abort);
      out.end();
      err.end();
      resolve({ code: code ?? (signal ? 128 + 15 : 255), tail, ran });
    });
  });
}

/** Calls `onLine` for each complete line of a byte stream, carriage returns dropped. */
function lineSplitter(onLine: (line: string) => void) {
  const decoder = new StringDecoder("utf8");
  let partial = "";
  const emit = (text: string, final: boolean) => {
    const lines = (partial + text).split("\n");
    partial = final ? "" : (lines.pop() ?? "");
    for (const line of final && lines.at(-1) === "" ? lines.slice(0, -1) : lines)
      onLine(line.replace(/\r$/, ""));
  };
  return { push: (chunk: Buffer) => emit(decoder.write(chunk), false), end: () => emit(decoder.end(), true) };
}
