import { spawn } from "node:child_process";
import { open, rm } from "node:fs/promises";
import type { Project, VmConfig } from "../config/model.js";
import { fsError, LaunchError } from "../errors.js";
import { writeJsonAtomic } from "../host/files.js";
import { readTailLines } from "../host/log-tail.js";
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
  const log = await openLog(paths.qemuLog);
  try {
    await log.write(
      `${new Date().toISOString()} castra: starting vm ${vm.name}: ${shellQuote([input.tools.qemuSystem, ...args])}\n`,
    );
  } catch (err) {
    await log.close();
    throw fsError(err, "write the QEMU log", paths.qemuLog);
  }
  const child = spawn(input.tools.qemuSystem, args, { detached: true, stdio: ["ignore", log.fd, log.fd] });
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
    await log.close();
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

async function openLog(path: string) {
  try {
    return await open(path, "a", 0o600);
  } catch (err) {
    throw fsError(err, "open the QEMU log", path);
  }
}

/** For the log only: the argv as a copy-pasteable command line (never executed). */
function shellQuote(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(" ");
}
