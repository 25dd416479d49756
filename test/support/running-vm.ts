import { type ChildProcess, spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { writeJsonAtomic } from "../../src/host/files.js";
import type { SshEndpoint } from "../../src/vm/guest-access.js";
import { vmPaths } from "../../src/vm/paths.js";
import type { VmRunRecord } from "../../src/vm/state.js";

/**
 * Makes castra see `vm` of the project in `rootDir` as running without QEMU: a live `sleep` stands in for
 * the VM's process, recorded in `.castra/run/<vm>.pid` with the SSH endpoint `up` would record (and `extra`
 * fields: a `readyPattern` not in the serial log makes it `starting`). Kill the returned child when done.
 */
export async function fakeRunningVm(
  rootDir: string,
  vm: string,
  ssh?: SshEndpoint,
  extra: Partial<VmRunRecord> = {},
): Promise<ChildProcess> {
  const child = spawn("sleep", ["600"], { stdio: "ignore" });
  await new Promise((resolve) => child.once("spawn", resolve));
  const stateDir = join(rootDir, ".castra");
  const paths = vmPaths({ stateDir }, { name: vm });
  await mkdir(join(stateDir, "run"), { recursive: true });
  const record: VmRunRecord = {
    pid: child.pid as number,
    argv: ["sleep", "600"],
    startedAt: new Date().toISOString(),
    accel: "tcg",
    baseImage: join(rootDir, "base.qcow2"),
    overlay: join(stateDir, `${vm}-overlay.qcow2`),
    cpus: 1,
    memoryBytes: 256 * 1024 * 1024,
    qmpSocket: paths.qmpSocket,
    serialLog: paths.serialLog,
    qemuLog: paths.qemuLog,
    ...(ssh ? { ssh } : {}),
    ...extra,
  };
  await writeJsonAtomic(paths.pidFile, record);
  return child;
}
