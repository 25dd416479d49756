import { findOnPath, QEMU_IMG, QEMU_INSTALL, QEMU_SYSTEM, runTool } from "../host/tools.js";
import { SSH_CLIENT_INSTALL } from "../ssh/client.js";
import { type DoctorCheck, fail, ok, warn } from "./check.js";
import { atLeast, MIN_NODE, MIN_QEMU, shortVersion, versionIn } from "./versions.js";

const INSTALL_QEMU = `install QEMU: ${QEMU_INSTALL.map(([platform, command]) => `${platform} \`${command}\``).join(", ")}`;

export function checkNode(version = process.versions.node): DoctorCheck {
  const needs = `castra needs ${shortVersion(MIN_NODE)} or newer`;
  if (atLeast(version, MIN_NODE)) return ok("node", `${version} (${needs})`);
  return fail(
    "node",
    `${version}: too old (${needs})`,
    "install Node.js 20.19 or newer (https://nodejs.org)",
  );
}

/** A QEMU tool: on PATH, and its version no older than castra supports. */
export async function checkQemuTool(tool: string, env: NodeJS.ProcessEnv): Promise<[DoctorCheck, string?]> {
  const path = await findOnPath(tool, env.PATH);
  if (!path) return [fail(tool, "not found on PATH", INSTALL_QEMU)];
  const version = await runTool(path, ["--version"], 10_000).then(
    ({ stdout }) => versionIn(stdout.split("\n")[0] ?? ""),
    () => undefined,
  );
  if (!version) {
    return [warn(tool, `${path} does not say its version`, `check it with \`${tool} --version\``), path];
  }
  if (!atLeast(version, MIN_QEMU)) {
    const summary = `${version} at ${path}: older than ${shortVersion(MIN_QEMU)}, the oldest castra supports`;
    return [
      warn(tool, summary, `upgrade QEMU to ${shortVersion(MIN_QEMU)} or newer (${INSTALL_QEMU})`),
      path,
    ];
  }
  return [ok(tool, `${version} at ${path}`), path];
}

/** Both QEMU tools; the system emulator's path, when found, for the accelerator probe. */
export async function checkQemu(
  env: NodeJS.ProcessEnv,
): Promise<{ checks: DoctorCheck[]; qemuSystem?: string }> {
  const [[system, qemuSystem], [img]] = await Promise.all([
    checkQemuTool(QEMU_SYSTEM, env),
    checkQemuTool(QEMU_IMG, env),
  ]);
  return { checks: [system, img], qemuSystem };
}

/** `ssh` for `castra ssh`, `ssh-keygen` for the project key `up` makes. */
export async function checkSshTools(env: NodeJS.ProcessEnv): Promise<DoctorCheck[]> {
  const why = { ssh: "`castra ssh` runs it", "ssh-keygen": "`castra up` makes the project key with it" };
  return Promise.all(
    Object.entries(why).map(async ([tool, use]) => {
      const path = await findOnPath(tool, env.PATH);
      if (!path) return fail(tool, `not found on PATH (${use})`, SSH_CLIENT_INSTALL);
      if (tool !== "ssh") return ok(tool, path);
      // `ssh -V` answers on stderr.
      const version = await runTool(path, ["-V"], 10_000).then(
        ({ stderr }) => stderr.trim().split(",")[0],
        () => undefined,
      );
      return ok(tool, version ? `${version} at ${path}` : path);
    }),
  );
}
