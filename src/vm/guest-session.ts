import type { Project, VmConfig } from "../config/model.js";
import { findOnPath } from "../host/tools.js";
import type { SshTarget } from "../ssh/client.js";
import { type GuestCommand, type GuestCommandResult, runGuestCommand } from "../ssh/guest-command.js";
import { hostKeyAlias, hostKeyMismatchError, knownHostsPath } from "../ssh/known-hosts.js";
import { projectSshTarget } from "../ssh/target.js";
import { vmPaths } from "./paths.js";
import type { VmRunRecord } from "./state.js";

/** A running guest castra works in over SSH (mounting its shares, provisioning it). */
export interface GuestSession {
  project: Project;
  vm: VmConfig;
  record: VmRunRecord;
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Until when a guest whose SSH server does not answer yet is tried again (ms since the epoch). */
  connectUntil?: number;
}

/** Why castra cannot work in the guest at all; undefined when it can try. */
export function unreachableReason(session: Pick<GuestSession, "vm" | "record">): string | undefined {
  if (session.vm.ssh === false) return "castra.toml sets ssh = false for it";
  if (!session.record.ssh) return "it was started without an SSH forward";
  if (session.record.ssh.keyServed === false)
    return 'castra hands the guest its key through the metadata service, and this VM has metadata = "none"';
  return undefined;
}

/**
 * How `up` logs into a running guest: `castra ssh`'s target, sharing one connection (kept a few seconds) from
 * the readiness check through mounting and provisioning, so each script costs no new key exchange.
 */
export function sharedLoginTarget(
  project: Project,
  vm: VmConfig,
  endpoint: NonNullable<VmRunRecord["ssh"]>,
): SshTarget {
  return { ...projectSshTarget(project, vm, endpoint), controlPath: vmPaths(project, vm).sshControl };
}

/**
 * Runs one of castra's constant scripts in the guest as root (see `ssh/guest-command.ts`), with the project
 * key, its login user and the project's known_hosts, like `castra ssh`. Resolves to undefined when there is
 * no `ssh` on the host.
 */
export async function runInGuest(
  session: GuestSession,
  command: Pick<GuestCommand, "script" | "stdin" | "onLine">,
): Promise<GuestCommandResult | undefined> {
  const endpoint = session.record.ssh;
  const ssh = await findOnPath("ssh", session.env.PATH);
  if (!endpoint || !ssh) return undefined;
  const { project, vm } = session;
  return runGuestCommand({
    ssh,
    target: sharedLoginTarget(project, vm, endpoint),
    asRoot: true,
    signal: session.signal,
    connectUntil: session.connectUntil,
    ...command,
  });
}

/** ssh's own failure (255) in words: a changed host key gets castra's explanation, else ssh's last line. */
export function loginFailure(session: Pick<GuestSession, "project" | "vm">, tail: string[]): string {
  const { project, vm } = session;
  const mismatch = hostKeyMismatchError(tail.join("\n"), {
    alias: hostKeyAlias(project.name, vm.name),
    knownHostsPath: knownHostsPath(project.stateDir),
    vmName: vm.name,
  });
  if (mismatch) return `${mismatch.headline} (${mismatch.hint})`;
  return tail.filter((line) => line.trim() !== "").at(-1) ?? "ssh failed without a message";
}
