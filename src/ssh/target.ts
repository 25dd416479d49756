import { join } from "node:path";
import type { SshTarget } from "./client.js";
import { sshDir } from "./keys.js";
import { hostKeyAlias, knownHostsPath } from "./known-hosts.js";

/**
 * How castra logs into one VM of a project at the SSH endpoint `up` recorded: the project key and
 * known_hosts, the VM's host key alias, and castra.toml's `ssh_user` over the recorded user (it applies at once).
 */
export function projectSshTarget(
  project: { name: string; stateDir: string },
  vm: { name: string; sshUser?: string },
  endpoint: { host: string; port: number; user: string },
): SshTarget {
  return {
    keyPath: join(sshDir(project.stateDir), "id_ed25519"),
    knownHostsPath: knownHostsPath(project.stateDir),
    hostKeyAlias: hostKeyAlias(project.name, vm.name),
    user: vm.sshUser ?? endpoint.user,
    port: endpoint.port,
    host: endpoint.host,
  };
}
