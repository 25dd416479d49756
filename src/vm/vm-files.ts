import { rm } from "node:fs/promises";
import type { Project, VmConfig } from "../config/model.js";
import { exists } from "../host/files.js";
import { forgetHostKey, hostKeyAlias, knownHostsPath } from "../ssh/known-hosts.js";
import { baseIdentityPath } from "./base-identity.js";
import { vmPaths } from "./paths.js";
import { suspendRecordPath } from "./saved-state.js";

/**
 * Deletes what belongs to one VM alone: its overlay (with every snapshot inside it), the overlay's base and
 * saved-state records, its runtime files, its provisioning record and its host key. Never images, the
 * download cache, logs, castra.toml or anything of another VM. Returns the files that were there.
 */
export async function removeVmFiles(project: Project, vm: VmConfig): Promise<string[]> {
  const paths = vmPaths(project, vm);
  const files = [
    vm.overlay,
    baseIdentityPath(vm.overlay),
    suspendRecordPath(vm.overlay),
    paths.pidFile,
    paths.stoppingMarker,
    paths.qmpSocket,
    paths.metadataConfig,
    paths.mountsRecord,
    paths.provisionRecord,
    paths.sshPort,
  ];
  const removed: string[] = [];
  for (const file of files) {
    if (!(await exists(file))) continue;
    await rm(file, { force: true });
    removed.push(file);
  }
  const knownHosts = knownHostsPath(project.stateDir);
  if (await forgetHostKey(knownHosts, hostKeyAlias(project.name, vm.name)))
    removed.push(`${knownHosts} (its host key)`);
  return removed;
}
