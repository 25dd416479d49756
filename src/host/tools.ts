import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { ToolMissingError } from "../errors.js";

export const QEMU_SYSTEM = "qemu-system-x86_64";
export const QEMU_IMG = "qemu-img";
export const PERL = "perl";

/** Absolute paths of the host tools castra runs, found on PATH once per command. */
export interface HostTools {
  qemuSystem: string;
  qemuImg: string;
  /** Found only when a VM to start serves metadata or has a broker: QEMU runs it per guest connection. */
  perl?: string;
}

/** The first executable `name` on `pathVar`, or undefined. */
export async function findOnPath(
  name: string,
  pathVar = process.env.PATH ?? "",
): Promise<string | undefined> {
  for (const dir of pathVar.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** Which of the host tools are missing from PATH (empty when all are there). */
export async function missingHostTools(env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const found = await Promise.all([QEMU_SYSTEM, QEMU_IMG].map((t) => findOnPath(t, env.PATH)));
  return [QEMU_SYSTEM, QEMU_IMG].filter((_, i) => !found[i]);
}

/** How to install QEMU (both tools), per platform. */
export const QEMU_INSTALL: readonly [platform: string, command: string][] = [
  ["Debian/Ubuntu", "sudo apt-get install qemu-system-x86 qemu-utils"],
  ["Fedora", "sudo dnf install qemu-system-x86 qemu-img"],
  ["macOS", "brew install qemu"],
];

export function toolMissingError(missing: string[]): ToolMissingError {
  const list = missing.join(" and ");
  return new ToolMissingError(`${list} ${missing.length > 1 ? "are" : "is"} not installed`, {
    detail: [
      `castra runs VMs with QEMU and needs ${list} on PATH. Install QEMU with:`,
      ...QEMU_INSTALL.map(([platform, command]) => `  ${`${platform}:`.padEnd(14)} ${command}`),
    ].join("\n"),
    hint: "install QEMU as shown above, check the host with `castra doctor`, then run `castra up` again",
  });
}

/** perl is missing: it relays each guest connection to the metadata service or the broker (`vm/connector.ts`). */
export function perlMissingError(vmNames: string[]): ToolMissingError {
  return new ToolMissingError(`${PERL} is not installed`, {
    detail: [
      `castra's metadata service and host broker run perl for each guest connection of ${vmNames.join(", ")}. Install it with:`,
      "  Debian/Ubuntu: sudo apt-get install perl-base",
      "  Fedora:        sudo dnf install perl-interpreter",
      "  macOS:         part of the system (/usr/bin/perl)",
    ].join("\n"),
    hint: `install perl as shown above, check it with \`${PERL} -v\`, then run \`castra up\` again`,
  });
}

/** Finds both tools or throws ToolMissingError (exit 72) naming every missing one. */
export async function requireHostTools(env: NodeJS.ProcessEnv = process.env): Promise<HostTools> {
  const [qemuSystem, qemuImg] = await Promise.all([
    findOnPath(QEMU_SYSTEM, env.PATH),
    findOnPath(QEMU_IMG, env.PATH),
  ]);
  if (!qemuSystem || !qemuImg) throw toolMissingError(await missingHostTools(env));
  return { qemuSystem, qemuImg };
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a tool with an argv array (never a shell) and returns its output, or rejects with its stderr. */
export function runTool(file: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr: String(stderr).trim() }));
      else resolve({ stdout: String(stdout), stderr: String(stderr) });
    });
  });
}
