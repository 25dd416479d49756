import { lstat } from "node:fs/promises";
import { join } from "node:path";
import type { Project, VmConfig } from "../config/model.js";
import { CannotCreateError, fsError } from "../errors.js";
import { ensureDir } from "../host/files.js";
import { shortHash } from "../host/short-hash.js";

/** Where each runtime and log file of one VM lives (docs/design.md, "Project state"). */
export interface VmPaths {
  pidFile: string;
  /** Present while `castra down` is stopping this VM: the `shutting_down` state. */
  stoppingMarker: string;
  qmpSocket: string;
  qemuLog: string;
  serialLog: string;
  /** The metadata responder's configuration (0600: it holds the token secret). */
  metadataConfig: string;
  /** One line per guest request to 169.254.169.254. */
  metadataLog: string;
  /** What provisioning ran in this VM's overlay, so `once` steps run once. */
  provisionRecord: string;
  /** The automatic SSH port castra last chose for this VM (kept while it stays free). */
  sshPort: string;
  /** Every provisioning step's output, with timestamps. */
  provisionLog: string;
  /** Which shares `up` mounted in the guest of the QEMU that runs now. */
  mountsRecord: string;
  /** The socket of castra's own shared SSH connection to the guest (private, like the metadata settings). */
  sshControl: string;
}

export interface ProjectPaths {
  stateDir: string;
  runDir: string;
  logsDir: string;
  lockFile: string;
  brokerPidFile: string;
  /** Written by the broker itself: which VMs said hello, and when. */
  brokerStateFile: string;
  brokerLog: string;
  imageManagerLog: string;
}

/** A unix socket path must fit in sun_path (108 bytes with the terminating NUL). */
export const UNIX_SOCKET_MAX_BYTES = 107;

export function projectPaths(project: Pick<Project, "stateDir">): ProjectPaths {
  const runDir = join(project.stateDir, "run");
  const logsDir = join(project.stateDir, "logs");
  return {
    stateDir: project.stateDir,
    runDir,
    logsDir,
    lockFile: join(runDir, "project.lock"),
    brokerPidFile: join(runDir, "broker.pid"),
    brokerStateFile: join(runDir, "broker-state.json"),
    brokerLog: join(logsDir, "broker.log"),
    imageManagerLog: join(logsDir, "image-manager.log"),
  };
}

export function vmPaths(
  project: Pick<Project, "stateDir">,
  vm: Pick<VmConfig, "name">,
  env = process.env,
): VmPaths {
  const { runDir, logsDir } = projectPaths(project);
  return {
    pidFile: join(runDir, `${vm.name}.pid`),
    stoppingMarker: join(runDir, `${vm.name}.stopping`),
    qmpSocket: qmpSocketPath(join(runDir, `${vm.name}.qmp`), project.stateDir, vm.name, env),
    qemuLog: join(logsDir, `${vm.name}.log`),
    serialLog: join(logsDir, `${vm.name}-serial.log`),
    metadataConfig: join(privateRunDir(project, env), `${vm.name}-metadata.json`),
    metadataLog: join(logsDir, `${vm.name}-metadata.log`),
    provisionRecord: join(project.stateDir, "provision", `${vm.name}.json`),
    sshPort: join(project.stateDir, "ssh", `${vm.name}.port`),
    provisionLog: join(logsDir, `${vm.name}-provision.log`),
    mountsRecord: mountsRecordPath(project, vm),
    sshControl: join(privateRunDir(project, env), `${vm.name}.ssh`),
  };
}

/** `run/<vm>-mounts.json`; without the rest of `vmPaths`, which looks at the environment for the QMP socket. */
export function mountsRecordPath(project: Pick<Project, "stateDir">, vm: Pick<VmConfig, "name">): string {
  return join(projectPaths(project).runDir, `${vm.name}-mounts.json`);
}

/** The QMP socket in run/, or a short per-user path when the project path is too long for a unix socket. */
function qmpSocketPath(preferred: string, stateDir: string, vmName: string, env: NodeJS.ProcessEnv): string {
  if (Buffer.byteLength(preferred) <= UNIX_SOCKET_MAX_BYTES) return preferred;
  const hash = shortHash(`${stateDir}\0${vmName}`);
  return join(shortRuntimeDir(env), `${hash}.qmp`);
}

/** `$XDG_RUNTIME_DIR/castra`, else `/tmp/castra-<uid>`: private to this user. */
export function shortRuntimeDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg?.startsWith("/")) return join(xdg, "castra");
  return join("/tmp", `castra-${process.getuid?.() ?? "user"}`);
}

/**
 * The project's runtime files that a guest must never reach, outside the project (a guest with a writable
 * mount of the project can change anything under `.castra/`): `<short runtime dir>/<hash of .castra>/`.
 */
export function privateRunDir(
  project: Pick<Project, "stateDir">,
  env: NodeJS.ProcessEnv = process.env,
): string {
  return join(shortRuntimeDir(env), shortHash(project.stateDir));
}

/** Creates `.castra/`, `run/` and `logs/` and the project's private runtime directory (all mode 0700). */
export async function ensureStateDirs(project: Pick<Project, "stateDir">): Promise<void> {
  const { stateDir, runDir, logsDir } = projectPaths(project);
  for (const dir of [stateDir, runDir, logsDir]) await makePrivateDir(dir);
  await ensureOwnedPrivateDir(shortRuntimeDir());
  await makePrivateDir(privateRunDir(project));
}

async function makePrivateDir(dir: string): Promise<void> {
  try {
    await ensureDir(dir, 0o700);
  } catch (err) {
    throw fsError(err, "create the project state directory", dir);
  }
}

/** A shared /tmp lets anyone pre-create our directory: only one that is ours, private and real is used. */
async function ensureOwnedPrivateDir(dir: string): Promise<void> {
  await makePrivateDir(dir);
  const info = await lstat(dir);
  const uid = process.getuid?.();
  if (!info.isDirectory() || (uid !== undefined && info.uid !== uid) || (info.mode & 0o077) !== 0) {
    throw new CannotCreateError(`Cannot use ${dir} for castra's private runtime files`, {
      detail: `${dir} must be a directory owned by you with mode 0700 (it holds the metadata service's settings, and QMP sockets when a project path is too long for one).`,
      hint: `remove it (rm -r ${dir}) or set XDG_RUNTIME_DIR to a private directory, then run the command again`,
    });
  }
}
