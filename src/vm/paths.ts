import { lstat } from "node:fs/promises";
import { join } from "node:path";
import type { Project, VmConfig } from "../config/model.js";
import { CannotCreateError, fsError } from "../errors.js";
import { ensureDir } from "../host/files.js";
import { ensurePrivateDir, type NarrowedMode, narrowModes } from "../host/private-files.js";
import { isOwnedPrivateDir, shortRuntimeDir } from "../host/runtime-dir.js";
import { shortHash } from "../host/short-hash.js";

/** Where each runtime and log file of one VM lives (docs/design.md, "Project state"). */
export interface VmPaths {
  pidFile: string;
  /** Present while `castra down` is stopping this VM: the `shutting_down` state. */
  stoppingMarker: string;
  qmpSocket: string;
  qemuLog: string;
  serialLog: string;
  /** The metadata server's configuration (0600: it holds the token secret), until the server read it. */
  metadataConfig: string;
  /** The metadata server's unix socket, which QEMU's per-connection connector relays to. */
  metadataSocket: string;
  /** The metadata server's run record. */
  metadataPidFile: string;
  /** One line per guest request to 169.254.169.254, and the metadata server's own lines. */
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
  /** Where the broker listens: a private unix socket outside the project (guests get there through QEMU). */
  brokerSocket: string;
  /** Written by the broker itself: which VMs said hello, and when. */
  brokerStateFile: string;
  brokerLog: string;
  imageManagerLog: string;
}

/** A unix socket path must fit in sun_path (108 bytes with the terminating NUL). */
export const UNIX_SOCKET_MAX_BYTES = 107;

export function projectPaths(project: Pick<Project, "stateDir">, env = process.env): ProjectPaths {
  const runDir = join(project.stateDir, "run");
  const logsDir = join(project.stateDir, "logs");
  return {
    stateDir: project.stateDir,
    runDir,
    logsDir,
    lockFile: join(runDir, "project.lock"),
    brokerPidFile: join(runDir, "broker.pid"),
    brokerSocket: socketPath(
      join(privateRunDir(project, env), "broker.sock"),
      `${project.stateDir}\0`,
      "broker.sock",
      env,
    ),
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
  const { runDir, logsDir } = projectPaths(project, env);
  const privateDir = privateRunDir(project, env);
  return {
    pidFile: join(runDir, `${vm.name}.pid`),
    stoppingMarker: join(runDir, `${vm.name}.stopping`),
    qmpSocket: socketPath(join(runDir, `${vm.name}.qmp`), `${project.stateDir}\0${vm.name}`, "qmp", env),
    qemuLog: join(logsDir, `${vm.name}.log`),
    serialLog: join(logsDir, `${vm.name}-serial.log`),
    metadataConfig: join(privateDir, `${vm.name}-metadata.json`),
    metadataSocket: socketPath(
      join(privateDir, `${vm.name}-metadata.sock`),
      `${project.stateDir}\0${vm.name}`,
      "metadata.sock",
      env,
    ),
    metadataPidFile: join(runDir, `${vm.name}-metadata.pid`),
    metadataLog: join(logsDir, `${vm.name}-metadata.log`),
    provisionRecord: join(project.stateDir, "provision", `${vm.name}.json`),
    sshPort: join(project.stateDir, "ssh", `${vm.name}.port`),
    provisionLog: join(logsDir, `${vm.name}-provision.log`),
    mountsRecord: mountsRecordPath(project, vm),
    sshControl: join(privateDir, `${vm.name}.ssh`),
  };
}

/** `run/<vm>-mounts.json`; without the rest of `vmPaths`, which looks at the environment for the QMP socket. */
export function mountsRecordPath(project: Pick<Project, "stateDir">, vm: Pick<VmConfig, "name">): string {
  return join(projectPaths(project).runDir, `${vm.name}-mounts.json`);
}

/** `preferred`, or a short per-user path (named by a hash of `key`) when it is too long for a unix socket. */
function socketPath(preferred: string, key: string, suffix: string, env: NodeJS.ProcessEnv): string {
  if (Buffer.byteLength(preferred) <= UNIX_SOCKET_MAX_BYTES) return preferred;
  return join(shortRuntimeDir(env), `${shortHash(key)}.${suffix}`);
}

/**
 * The project's runtime files that a guest must never reach, outside the project (a guest with a writable
 * mount of the project can change anything under `.castra/`): `<short runtime dir>/<hash of .castra>/`. The
 * sockets QEMU relays guest connections to live here, so no guest can point its relay at another socket.
 */
export function privateRunDir(
  project: Pick<Project, "stateDir">,
  env: NodeJS.ProcessEnv = process.env,
): string {
  return join(shortRuntimeDir(env), shortHash(project.stateDir));
}

/**
 * Creates `.castra/`, `run/` and `logs/` and the project's private runtime directory (0700, never through a
 * link), and narrows anything below `.castra/` that others could read to owner-only. Returns what it
 * narrowed, for a notice.
 */
export async function ensureStateDirs(project: Pick<Project, "stateDir">): Promise<NarrowedMode[]> {
  const { stateDir, runDir, logsDir } = projectPaths(project);
  for (const dir of [runDir, logsDir]) await ensurePrivateDir(stateDir, dir);
  const narrowed = await narrowModes(stateDir);
  const shortDir = shortRuntimeDir();
  await ensureOwnedPrivateDir(shortDir);
  await ensurePrivateDir(shortDir, privateRunDir(project));
  return narrowed;
}

/** A shared /tmp lets anyone pre-create our directory: only one that is ours, private and real is used. */
async function ensureOwnedPrivateDir(dir: string): Promise<void> {
  try {
    await ensureDir(dir, 0o700);
  } catch (err) {
    throw fsError(err, "create the private runtime directory", dir);
  }
  if (!isOwnedPrivateDir(await lstat(dir))) {
    throw new CannotCreateError(`Cannot use ${dir} for castra's private runtime files`, {
      detail: `${dir} must be a directory owned by you with mode 0700 (it holds the sockets of the metadata service and the broker, their settings, and QMP sockets when a project path is too long for one).`,
      hint: `remove it (rm -r ${dir}) or set XDG_RUNTIME_DIR to a private directory, then run the command again`,
    });
  }
}
