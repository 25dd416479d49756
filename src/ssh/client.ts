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

/** An ssh_config file for `castra ssh` to read (e.g. ~/.ssh/config); unset, it reads none (`-F none`). */
export const SSH_CONFIG_ENV = "CASTRA_SSH_CONFIG";
/** How long a shared connection outlives its last use: enough for `up` to go from ready to its guest's setup. */
export const SHARED_CONNECTION_SECONDS = 15;

/**
 * The ssh_config options that log into a guest with the project key only, and hand it neither the user's
 * agent nor their X display. The first host key a guest shows is recorded under its alias; a different one
 * later is refused (`accept-new`). No password prompts: castra's guests only take the key. One list for
 * `castra ssh`'s argv and `castra ssh-config`'s block.
 */
function clientOptions(target: SshTarget): [string, string][] {
  return [
    ["ForwardAgent", "no"],
    ["ForwardX11", "no"],
    ["IdentityFile", sshConfigValue(target.keyPath)],
    ["IdentitiesOnly", "yes"],
    ["UserKnownHostsFile", sshConfigValue(target.knownHostsPath)],
    ["GlobalKnownHostsFile", "/dev/null"],
    ["StrictHostKeyChecking", "accept-new"],
    // A project-local file: plain names let people read which VM a key belongs to (Debian hashes by default).
    ["HashKnownHosts", "no"],
    ["HostKeyAlias", target.hostKeyAlias],
    ["BatchMode", "yes"],
    ["ConnectTimeout", "10"],
    // Hides "Permanently added ..." on first use; a changed host key is an error and still shown.
    ["LogLevel", "ERROR"],
  ];
}

/**
 * The argv (without `ssh` itself) that logs into a guest. The user's own `-o` options come first: ssh keeps
 * the first value it reads for each option, so theirs win. No ssh_config file is read (`-F none`) unless
 * CASTRA_SSH_CONFIG names one, and options on the command line win over any file: ~/.ssh/config cannot
 * forward the user's agent into a guest.
 */
export function buildSshArgs(
  target: SshTarget,
  userOptions: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  return [
    "-F",
    env[SSH_CONFIG_ENV] || "none",
    ...userOptions.flatMap((option) => ["-o", option]),
    ...clientOptions(target).flatMap(([key, value]) => ["-o", `${key}=${value}`]),
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

/** An OpenSSH `Host` block that reaches the guest as `Host <alias>`, for scp, rsync and editors. */
export function sshConfigBlock(target: SshTarget): string {
  const lines = [
    `Host ${target.hostKeyAlias}`,
    `  HostName ${target.host ?? "127.0.0.1"}`,
    `  Port ${target.port}`,
    `  User ${target.user}`,
    ...clientOptions(target).map(([key, value]) => `  ${key} ${value}`),
  ];
  return `${lines.join("\n")}\n`;
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

export const SSH_CLIENT_INSTALL =
  "install the OpenSSH client: Debian/Ubuntu `sudo apt-get install openssh-client`, " +
  "Fedora `sudo dnf install openssh-clients`; macOS ships it";

/** An OpenSSH client tool (`ssh`, `ssh-keygen`) is missing; `why` says what castra needed it for. */
export function sshToolMissingError(tool: string, why: string, cause?: unknown): ToolMissingError {
  return new ToolMissingError(`${tool} is not installed`, {
    detail: why,
    hint: SSH_CLIENT_INSTALL,
    cause,
  });
}
