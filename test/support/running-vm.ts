import { type ChildProcess, spawn } from "node:child_process";
import { loadOrDefaultProject } from "../../src/config/load.js";
import { writeJsonAtomic } from "../../src/host/files.js";
import type { SshEndpoint } from "../../src/vm/guest-access.js";
import { ensureStateDirs, vmPaths } from "../../src/vm/paths.js";
import { buildQemuArgs } from "../../src/vm/qemu-args.js";
import type { VmRunRecord } from "../../src/vm/state.js";

/**
 * Makes castra see `vm` of the project in `rootDir` as running without QEMU: a node process that idles with
 * the argv `up` would give QEMU for this VM (its identity, its SSH forward) stands in for it, recorded in
 * `.castra/run/<vm>.pid` as `up` records it (and `extra` fields: a `readyPattern` not in the serial log makes
 * it `starting`). castra's real check (`vmStatus`) then finds it, as it would a QEMU. Kill the returned child
 * when done.
 */
export async function fakeRunningVm(
  rootDir: string,
  vmName: string,
  ssh?: SshEndpoint,
  extra: Partial<VmRunRecord> = {},
): Promise<ChildProcess> {
  const project = await loadOrDefaultProject({ cwd: rootDir, skipDiscovery: true });
  const vm = project.vms.find((v) => v.name === vmName);
  if (!vm) throw new Error(`no vm ${vmName} in ${rootDir}`);
  const paths = vmPaths(project, vm);
  const declares22 = vm.portForwards.some((f) => f.guest === 22);
  const sshForward =
    ssh && !declares22
      ? { host: ssh.port, guest: 22, protocol: "tcp" as const, hostAddress: ssh.host }
      : undefined;
  const base = { path: `${rootDir}/base.qcow2`, format: "qcow2" };
  const network = { subnet: "169.254.0.0/16", mac: "52:54:00:00:00:01", sshForward };
  const args = buildQemuArgs(vm, base, paths, { accel: "tcg", projectName: project.name, network });
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1 << 30)", "--", ...args], {
    stdio: "ignore",
  });
  await new Promise((resolve) => child.once("spawn", resolve));
  await ensureStateDirs(project);
  const record: VmRunRecord = {
    pid: child.pid as number,
    argv: [process.execPath, "-e", "setInterval(() => {}, 1 << 30)", "--", ...args],
    startedAt: new Date().toISOString(),
    accel: "tcg",
    baseImage: base.path,
    overlay: vm.overlay,
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
