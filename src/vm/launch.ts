import { type StdioOptions, spawn } from "node:child_process";
import { type FileHandle, rm } from "node:fs/promises";
import type { Project, VmConfig } from "../config/model.js";
import { fsError, LaunchError } from "../errors.js";
import { writeJsonAtomic } from "../host/files.js";
import { readTailLines } from "../host/log-tail.js";
import { openPrivate } from "../host/private-files.js";
import { sleep } from "../host/process.js";
import type { HostTools } from "../host/tools.js";
import type { Accelerator } from "./accel.js";
import type { ResolvedBaseImage } from "./base-image.js";
import type { GuestNetworkPlan, SshEndpoint } from "./guest-access.js";
import type { VmPaths } from "./paths.js";
import { buildQemuArgs, vmResources } from "./qemu-args.js";
import { QmpClient } from "./qmp.js";
import { removeSuspendRecord, SUSPEND_SNAPSHOT, type SuspendRecord } from "./saved-state.js";
import { monitor } from "./snapshots.js";
import { removeRuntimeFiles, type VmRunRecord } from "./state.js";
import { checkResumable } from "./suspend.js";

/** QEMU opens its QMP socket before the guest runs a single instruction; this only bounds a stuck host. */
const STARTUP_TIMEOUT_MS = 60_000;

export interface LaunchInput {
  project: Project;
  vm: VmConfig;
  base: ResolvedBaseImage;
  tools: HostTools;
  accel: Accelerator;
  paths: VmPaths;
  network: GuestNetworkPlan;
  ssh?: SshEndpoint;
  /** Resume this saved state (`-loadvm`) instead of booting; refused when the VM no longer matches it. */
  resume?: SuspendRecord;
}

/**
 * Starts one detached QEMU (output to logs/<vm>.log), records it in run/<vm>.pid, and returns once QEMU
 * answers on QMP. QEMU exiting before that is a LaunchError (exit 70) with the last lines it wrote.
 */
export async function launchVm(input: LaunchInput): Promise<VmRunRecord> {
  const { vm, base, paths } = input;
  const args = buildQemuArgs(vm, base, paths, {
    accel: input.accel,
    projectName: input.project.name,
    network: input.network,
  });
  const resources = vmResources(vm, base);
  if (input.resume) {
    const { qemuSystem, qemuImg } = input.tools;
    await checkResumable({ vm, saved: input.resume, args, qemuSystem, qemuImg, resources });
    args.push("-loadvm", SUSPEND_SNAPSHOT);
  }
  await rm(paths.qmpSocket, { force: true });
  const files = await openQemuFiles(input);
  const log = files[0] as FileHandle;
  try {
    await log.write(
      `${new Date().toISOString()} castra: starting vm ${vm.name}: ${shellQuote([input.tools.qemuSystem, ...args])}\n`,
    );
  } catch (err) {
    await closeAll(files);
    throw fsError(err, "write the QEMU log", paths.qemuLog);
  }
  // stdout and stderr to the log, then the descriptors of QEMU_FDS in order (3, 4, 5).
  const stdio: StdioOptions = ["ignore", log.fd, ...files.map((f) => f.fd)];
  const child = spawn(input.tools.qemuSystem, args, { detached: true, stdio });
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  child.on("exit", (code, signal) => {
    exit = { code, signal };
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    });
  } catch (err) {
    throw new LaunchError(`Cannot run ${input.tools.qemuSystem}`, {
      detail: (err as Error).message,
      hint: "check the QEMU installation (qemu-system-x86_64 --version), then run `castra up` again",
      cause: err,
    });
  } finally {
    await closeAll(files);
  }
  child.unref();
  const record: VmRunRecord = {
    pid: child.pid as number,
    argv: [input.tools.qemuSystem, ...args],
    startedAt: new Date().toISOString(),
    accel: input.accel,
    baseImage: base.path,
    overlay: vm.overlay,
    cpus: resources.cpus,
    memoryBytes: resources.memoryBytes,
    forwards: vm.portForwards,
    // A resumed guest is ready when it runs: its ready line was printed before the suspend.
    readyPattern: input.resume ? undefined : resources.readyPattern,
    ...(input.resume ? { resumedFrom: input.resume.savedAt } : {}),
    qmpSocket: paths.qmpSocket,
    serialLog: paths.serialLog,
    qemuLog: paths.qemuLog,
    ...(input.ssh ? { ssh: input.ssh } : {}),
  };
  await writeJsonAtomic(paths.pidFile, record);

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (!exit) {
    const client = await QmpClient.connect(paths.qmpSocket, { timeoutMs: 2000 }).catch(() => undefined);
    if (client) {
      client.close();
      if (input.resume) await forgetSavedState(vm, paths.qmpSocket);
      return record;
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await removeRuntimeFiles(paths, record);
      throw await qemuFailure(
        vm.name,
        paths.qemuLog,
        `QEMU did not open its QMP socket within ${STARTUP_TIMEOUT_MS / 1000} s`,
      );
    }
    await sleep(100);
  }
  await removeRuntimeFiles(paths, record);
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`;
  throw await qemuFailure(vm.name, paths.qemuLog, `QEMU ${how} while starting`);
}

/** Once resumed, the saved state has done its job: its snapshot and record go, so it can never be resumed twice. */
async function forgetSavedState(vm: VmConfig, qmpSocket: string): Promise<void> {
  await removeSuspendRecord(vm.overlay);
  await monitor(qmpSocket, `delvm ${SUSPEND_SNAPSHOT}`, vm.name).catch(() => {});
}

/** A LaunchError carrying the last lines QEMU wrote, since they name the actual cause. */
export async function qemuFailure(vmName: string, qemuLog: string, what: string): Promise<LaunchError> {
  const lines = await readTailLines(qemuLog, 12).catch(() => []);
  const own = lines.filter((line) => !/^\S+ castra: /.test(line));
  return new LaunchError(`vm ${vmName} failed to start: ${what}`, {
    detail: own.length > 0 ? `Last lines of ${qemuLog}:\n${own.map((l) => `  ${l}`).join("\n")}` : undefined,
    hint: `read ${qemuLog} (or \`castra logs\`), fix what QEMU reports, then run \`castra up\` again`,
  });
}

/**
 * The QEMU log (its stdout and stderr), then what QEMU_FDS hands it: the serial log, truncated as every boot
 * starts it afresh, and the overlay read-write and read-only. None is ever opened through a link.
 */
async function openQemuFiles({ paths, vm }: LaunchInput): Promise<FileHandle[]> {
  const overlay = `open the overlay of vm ${vm.name}`;
  const wanted = [
    [paths.qemuLog, "append", "open the QEMU log"],
    [paths.serialLog, "truncate", "open the serial console log"],
    [vm.overlay, "readWrite", overlay],
    [vm.overlay, "read", overlay],
  ] as const;
  const opened: FileHandle[] = [];
  try {
    for (const [path, how, action] of wanted) opened.push(await openPrivate(path, how, action));
  } catch (err) {
    await closeAll(opened);
    throw err;
  }
  return opened;
}

async function closeAll(files: FileHandle[]): Promise<void> {
  await Promise.all(files.map((f) => f.close().catch(() => {})));
}

/** For the log only: the argv as a copy-pasteable command line (never executed). */
function shellQuote(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(" ");
}
