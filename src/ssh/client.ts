import { ToolMissingError, UsageError } from "../errors.js";

export interface SshTarget {
  /** The project's private key (`.castra/ssh/id_ed25519`). */
  keyPath: string;
  /** The project's known_hosts (`.castra/ssh/known_hosts`). */
  knownHostsPath: string;
  /** Names the guest's host key in known_hosts (see `hostKeyAlias`). */
  hostKeyAlias: string;
  /** The guest's login user, from the catalog profile (`alpine` for alpine-minimal). */
  user: string;
  /** The 127.0.0.1 port forwarded to the guest's port 22. */
  port: number;
  host?: string;
  /** Run this instead of a login shell; ssh joins the words with spaces for the guest's shell, as usual. */
  command?: readonly string[];
  /**
   * Share one connection through this socket, kept a few seconds after its last use: `up` logs in to see that
   * SSH works, then mounts and provisions, and each new login costs the guest a key exchange.
   */
  controlPath?: string;
}

/** How long a shared connection outlives its last use: enough for `up` to go from ready to its guest's setup. */
export const SHARED_CONNECTION_SECONDS = 15;

/**
 * The argv (without `ssh` itself) that logs into a guest with the project key only. The first host key a
 * guest shows is recorded under its alias; a different one later is refused (`accept-new`). No password
 * prompts: castra's guests only take the key.
 */
export function buildSshArgs(target: SshTarget): string[] {
  return [
    "-o",
    `IdentityFile=${sshConfigValue(target.keyPath)}`,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    `UserKnownHostsFile=${sshConfigValue(target.knownHostsPath)}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "StrictHostKeyChecking=accept-new",
    // A project-local file: plain names let people read which VM a key belongs to (Debian hashes by default).
    "-o",
    "HashKnownHosts=no",
    "-o",
    `HostKeyAlias=${target.hostKeyAlias}`,
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
    // Hides "Permanently added …" on first use; a changed host key is an error and still shown.
    "-o",
    "LogLevel=ERROR",
    ...(target.controlPath
      ? [
          ...["-o", "ControlMaster=auto", "-o", `ControlPath=${sshConfigValue(target.controlPath)}`],
          ...["-o", `ControlPersist=${SHARED_CONNECTION_SECONDS}`],
        ]
      : []),
    "-p",
    String(target.port),
    "--",
    `${target.user}@${target.host ?? "127.0.0.1"}`,
    ...(target.command ?? []),
  ];
}

/**
 * A path as an ssh_config value: double-quoted so spaces do not split it, `\` and `"` escaped, and `%`
 * doubled because ssh expands `%` tokens in both options.
 */
export function sshConfigValue(path: string): string {
  if (/[\r\n]/.test(path)) {
    throw new UsageError("A path for ssh contains a line break", {
      detail: JSON.stringify(path),
      hint: "move the project to a directory whose path has no line breaks",
    });
  }
  return `"${path.replace(/[\\"]/g, "\\$&").replaceAll("%", "%%")}"`;
}

/** An OpenSSH client tool (`ssh`, `ssh-keygen`) is missing; `why` says what castra needed it for. */
export function sshToolMissingError(tool: string, why: string, cause?: unknown): ToolMissingError {
  return new ToolMissingError(`${tool} is not installed`, {
    detail: why,
    hint:
      "install the OpenSSH client: Debian/Ubuntu `sudo apt-get install openssh-client`, " +
      "Fedora `sudo dnf install openssh-clients`; macOS ships it",
    cause,
  });
}
