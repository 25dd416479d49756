import type { Project } from "../config/model.js";
import { downloadStoreRoot } from "../images/download-store.js";
import { checkAccelerator } from "./accelerator.js";
import type { DoctorCheck } from "./check.js";
import { checkProxies } from "./proxy.js";
import { checkCache, checkProjectDisk, checkSockets } from "./storage.js";
import { checkNode, checkQemu, checkSshTools } from "./tools.js";

export interface DiagnoseInput {
  env: NodeJS.ProcessEnv;
  /** The project of the working directory; absent when it could not be loaded (the caller reports why). */
  project?: Project;
  /** The KVM device (tests point it elsewhere). */
  kvmDevice?: string;
  probeTimeoutMs?: number;
}

/**
 * Every check of `castra doctor`, in the order they print: Node, QEMU, the accelerator, the OpenSSH
 * client, disk space and the download cache, proxies, and the project's socket paths.
 */
export async function diagnoseHost(input: DiagnoseInput): Promise<DoctorCheck[]> {
  const { env, project } = input;
  const qemu = await checkQemu(env);
  const [accelerator, ssh, cache] = await Promise.all([
    checkAccelerator({
      kvmDevice: input.kvmDevice ?? "/dev/kvm",
      qemuSystem: qemu.qemuSystem,
      env,
      probeTimeoutMs: input.probeTimeoutMs,
    }),
    checkSshTools(env),
    checkCache(downloadStoreRoot(env)),
  ]);
  const projectChecks = project ? [await checkProjectDisk(project)] : [];
  const sockets = project ? [await checkSockets(project, env)] : [];
  return [
    checkNode(),
    ...qemu.checks,
    accelerator,
    ...ssh,
    ...projectChecks,
    ...cache,
    checkProxies(env),
    ...sockets,
  ];
}
