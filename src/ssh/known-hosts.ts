import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { DataError } from "../errors.js";
import { openPrivate, refuseLink } from "../host/private-files.js";
import { pasteable } from "../host/shell-words.js";

/** The project's own known_hosts: guests' host keys never mix with the user's ~/.ssh/known_hosts. */
export function knownHostsPath(stateDir: string): string {
  return join(stateDir, "ssh", "known_hosts");
}

/**
 * The name a guest's host key is recorded under. Every VM is reached at 127.0.0.1 on some port, so the
 * address cannot tell VMs (or projects) apart; the alias does.
 */
export function hostKeyAlias(projectName: string, vmName: string): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, "-");
  return `castra-${clean(projectName)}-${clean(vmName)}`;
}

/**
 * Recognises ssh's refusal of a guest whose host key differs from the recorded one and explains it;
 * undefined for any other ssh output.
 */
export function hostKeyMismatchError(
  sshStderr: string,
  where: { alias: string; knownHostsPath: string; vmName: string },
): DataError | undefined {
  const changed = /REMOTE HOST IDENTIFICATION HAS CHANGED/.test(sshStderr);
  if (!changed && !/Host key verification failed/.test(sshStderr)) return undefined;
  return new DataError(`The SSH host key of VM ${where.vmName} changed; ssh refused to connect`, {
    detail:
      `${where.knownHostsPath} holds another key for ${where.alias}. Expected after the VM's overlay was ` +
      "recreated; otherwise something else may be answering on the VM's SSH port.",
    hint: `if the VM was recreated, forget the old key: ssh-keygen -R ${where.alias} -f ${pasteable(where.knownHostsPath)}`,
  });
}

/** Drops every line recorded for `alias` (a recreated VM has a new host key); true when one was there. */
export async function forgetHostKey(knownHosts: string, alias: string): Promise<boolean> {
  // A link planted there is refused (73), never read or rewritten.
  await refuseLink(knownHosts);
  const text = await readFile(knownHosts, "utf8").catch(() => undefined);
  if (text === undefined) return false;
  const lines = text.split("\n");
  const kept = lines.filter((line) => line.split(/\s+/, 1)[0]?.split(",").includes(alias) !== true);
  if (kept.length === lines.length) return false;
  const handle = await openPrivate(knownHosts, "truncate", "rewrite the project's known_hosts");
  try {
    await handle.writeFile(kept.join("\n"));
  } finally {
    await handle.close();
  }
  return true;
}
