import { type ChildProcess, execFile, spawn } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The test guest every QEMU test boots, built from Debian's packages by test/fixtures/build-guest.sh.
 * Kernel command-line words (see test/fixtures/README.md): `castra.disk=1`, `castra.write=<word>`,
 * `castra.net=1`, `castra.metadata=1`, `castra.ssh=1`, `castra.mdtimeout=<s>`, `castra.broker=<port>`,
 * `castra.vm=<name>`, `castra.no9p=1`, `castra.mount9p=<tag>:<dir>[:ro]`, `castra.9popts=<options>`,
 * `castra.counter=1`, `castra.mdbench=<n>`, `castra.mdref=<port>`, `castra.mdflood=<n>`, `castra.mdhold=<s>`,
 * `castra.mdhog=1`. The BIOS disk boots with `console=ttyS0 quiet castra.disk=1`.
 */
export interface TestGuest {
  /** Debian's kernel (for `-kernel`). */
  kernel: string;
  /** The busybox initramfs with /init (for `-initrd`). */
  initrd: string;
  /** BIOS-bootable qcow2: syslinux on partition 1, an ext4 data partition 2. */
  biosDisk: string;
  /** A 64 MiB whole-disk ext4 image (for `castra.disk=1` with direct kernel boot). */
  dataDiskRaw: string;
  /** A fixed VHD of `dataDiskRaw` (raw bytes + 512-byte footer): the managed image's root disk. */
  vhd: string;
  /** sha256 and size of each file above, by file name (vmlinuz, initramfs.cpio.gz, ...). */
  sha256: Record<string, string>;
  size: Record<string, number>;
}

/** The `-append` every direct kernel boot needs (serial console, kernel messages kept quiet). */
export const GUEST_APPEND = "console=ttyS0 quiet";
/** A regular expression for the guest's login prompt (printed like a getty's: no newline after it). */
export const LOGIN_PROMPT = /login: ?$/;

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const BUILD_SCRIPT = join(FIXTURES, "build-guest.sh");
const OUT = join(FIXTURES, ".cache", "out");

let building: Promise<TestGuest> | undefined;

/** Builds the guest once per process (the script itself is cached and serialised with flock). */
export function buildTestGuest(): Promise<TestGuest> {
  building ??= runBuildScript().then(readManifest);
  return building;
}

function runBuildScript(): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("bash", [BUILD_SCRIPT], { maxBuffer: 16 * 1024 * 1024 }, (error, _stdout, stderr) => {
      if (error) {
        const tail = stderr.trim().split("\n").slice(-15).join("\n");
        reject(new Error(`test guest build failed (bash ${BUILD_SCRIPT}):\n${tail}`));
      } else resolve();
    });
  });
}

interface Manifest {
  files: Record<string, { sha256: string; size: number }>;
}

function readManifest(): TestGuest {
  const manifest = JSON.parse(readFileSync(join(OUT, "manifest.json"), "utf8")) as Manifest;
  const sha256: Record<string, string> = {};
  const size: Record<string, number> = {};
  for (const [name, file] of Object.entries(manifest.files)) {
    sha256[name] = file.sha256;
    size[name] = file.size;
  }
  return {
    kernel: join(OUT, "vmlinuz"),
    initrd: join(OUT, "initramfs.cpio.gz"),
    biosDisk: join(OUT, "bios-disk.qcow2"),
    dataDiskRaw: join(OUT, "data-disk.raw"),
    vhd: join(OUT, "rootfs.vhd"),
    sha256,
    size,
  };
}

// Tools for QEMU and for building the guest, as scripts/install-test-deps.sh installs them.
const REQUIRED_TOOLS = [
  "qemu-system-x86_64",
  "qemu-img",
  "busybox",
  "cpio",
  "mkfs.ext4",
  "sfdisk",
  "mkfs.fat",
  "mcopy",
  "syslinux",
  "dropbear",
  "doas",
  "modinfo",
  "apt-get",
  "flock",
  "ssh",
  "ssh-keygen",
];

function onPath(tool: string): boolean {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin"];
  return dirs.some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Whether QEMU and the tools that build the test guest are installed. */
export function qemuAvailable(): { ok: boolean; reason?: string } {
  const missing = REQUIRED_TOOLS.filter((tool) => !onPath(tool));
  if (missing.length === 0) return { ok: true };
  return { ok: false, reason: `missing ${missing.join(", ")} (run scripts/install-test-deps.sh)` };
}

/**
 * For `test(name, { skip: qemuSkip() }, ...)`: false when QEMU is usable, else the reason to skip.
 * In CI (`CI=true`) a missing QEMU is a failure, never a skip: it throws.
 */
export function qemuSkip(): string | false {
  const status = qemuAvailable();
  if (status.ok) return false;
  if (process.env.CI === "true") throw new Error(`QEMU tests cannot run in CI: ${status.reason}`);
  console.log(`# skipping QEMU test: ${status.reason}`);
  return `QEMU unavailable: ${status.reason}`;
}

/** Inside a test: `if (skipUnlessQemu(t)) return;` skips it (outside CI) when QEMU is missing. */
export function skipUnlessQemu(t: { skip(message?: string): void }): boolean {
  const reason = qemuSkip();
  if (reason === false) return false;
  t.skip(reason);
  return true;
}

export interface WaitOptions {
  /** Stop waiting early (with the log tail in the error) once this returns false, e.g. QEMU exited. */
  isAlive?: () => boolean;
  /** Only look at the log from this byte offset on (a second boot appending to the same file). */
  fromOffset?: number;
}

/** The lines of a serial log, without carriage returns; the last one may be a partial prompt. */
export function serialLines(text: string): string[] {
  return text.replace(/\r/g, "").split("\n");
}

/** Polls a growing log until a line (the partial last one included) matches; returns that line. */
export async function waitForLine(
  file: string,
  pattern: RegExp,
  timeoutMs: number,
  options: WaitOptions = {},
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let lines: string[] = [];
  for (;;) {
    const text = existsSync(file)
      ? readFileSync(file)
          .subarray(options.fromOffset ?? 0)
          .toString()
      : "";
    lines = serialLines(text);
    const match = lines.find((line) => pattern.test(line));
    if (match !== undefined) return match;
    const alive = options.isAlive?.() ?? true;
    if (!alive || Date.now() >= deadline) {
      const why = alive ? `within ${timeoutMs} ms` : "before the process exited";
      const tail = lines.slice(-20).join("\n");
      throw new Error(`no line matching ${pattern} in ${file} ${why}; last lines:\n${tail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** One metadata request the guest made (`castra.metadata=1`), as it reported it on its console. */
export interface MetadataResult {
  path: string;
  /** put (the token request), yes (with the token), none (IMDSv1), wrong (a bad token). */
  token: string;
  status: "ok" | "fail";
  /** HTTP status, or "none" when there was no answer (timeout, refused). */
  http: string;
  /** Guest-side duration, 10 ms resolution. */
  ms: number;
  sha256?: string;
  bytes?: number;
  /** The body as printed on the console (line ends normalised, no trailing newline). */
  body: string;
}

const META_HEADER =
  /^castra-test-guest: meta (\S+) token=(\S+) status=(ok|fail) http=(\S+) ms=(\d+)(?: bytes=(\d+) sha256=([0-9a-f]+))? <<<$/;

/** Every metadata result in a serial log's text, in request order. */
export function parseMetadataReport(serialText: string): MetadataResult[] {
  const lines = serialLines(serialText);
  const results: MetadataResult[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = META_HEADER.exec(lines[i] ?? "");
    if (!m) continue;
    const end = lines.indexOf(">>>", i + 1);
    const body = lines.slice(i + 1, end < 0 ? undefined : end).join("\n");
    results.push({
      path: m[1] ?? "",
      token: m[2] ?? "",
      status: m[3] === "ok" ? "ok" : "fail",
      http: m[4] ?? "",
      ms: Number(m[5]),
      bytes: m[6] === undefined ? undefined : Number(m[6]),
      sha256: m[7],
      body,
    });
    if (end > i) i = end;
  }
  return results;
}

/** A QEMU started directly by a test (no castra involved). */
export interface TestQemu {
  child: ChildProcess;
  pid: number;
  serialLog: string;
  qmpSocket: string;
  /** QEMU's exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  isAlive(): boolean;
  /** SIGKILL by pid; safe to call in `finally` whether or not QEMU is still running. */
  kill(): void;
  /** QEMU's own stderr so far (for failure messages). */
  stderr(): string;
}

/** Starts `qemu-system-x86_64 -accel tcg -display none -serial file:… -qmp unix:…` plus `args`. */
export function startTestQemu(args: string[], serialLog: string, qmpSocket: string): TestQemu {
  const child = spawn(
    "qemu-system-x86_64",
    ["-accel", "tcg", "-m", "256", "-display", "none", "-serial", `file:${serialLog}`].concat(
      ["-qmp", `unix:${qmpSocket},server=on,wait=off`],
      args,
    ),
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk) => (stderr += chunk));
  let alive = true;
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code) => {
      alive = false;
      resolve(code);
    });
    child.on("error", (error) => {
      alive = false;
      stderr += String(error);
      resolve(null);
    });
  });
  return {
    child,
    pid: child.pid ?? -1,
    serialLog,
    qmpSocket,
    exited,
    isAlive: () => alive,
    kill: () => {
      if (alive && child.pid) process.kill(child.pid, "SIGKILL");
    },
    stderr: () => stderr,
  };
}

/** A QMP command: its name alone, or the name with its arguments. */
export type QmpCommand = string | { execute: string; arguments?: Record<string, unknown> };

/** Sends QMP commands in order over the unix socket (capabilities first) and returns their replies. */
export function qmpExecute(
  socketPath: string,
  commands: QmpCommand[],
  timeoutMs = 10_000,
): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const replies: unknown[] = [];
    const queue: QmpCommand[] = ["qmp_capabilities", ...commands];
    let buffered = "";
    const timer = setTimeout(
      () => fail(new Error(`QMP on ${socketPath} did not answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    const fail = (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const sendNext = () => {
      const next = queue.shift();
      if (next === undefined) {
        clearTimeout(timer);
        socket.end();
        resolve(replies.slice(1));
      } else socket.write(`${JSON.stringify(typeof next === "string" ? { execute: next } : next)}\n`);
    };
    socket.on("error", fail);
    socket.on("data", (chunk) => {
      buffered += chunk;
      let newline = buffered.indexOf("\n");
      while (newline >= 0) {
        const message = JSON.parse(buffered.slice(0, newline)) as Record<string, unknown>;
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf("\n");
        // The greeting and each command's reply move us on; asynchronous events do not.
        if ("QMP" in message) sendNext();
        else if ("return" in message || "error" in message) {
          replies.push(message);
          sendNext();
        }
      }
    });
  });
}
