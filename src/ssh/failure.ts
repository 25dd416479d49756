import { UnavailableError } from "../errors.js";

/** Why ssh (exit 255) could not log into a guest, as far as its stderr tells. */
export type SshFailure =
  /** QEMU accepted the connection, but nothing listens on the guest's port 22 (slirp resets it). */
  | "no-server"
  /** The connection stayed silent: the guest's network or SSH server is not up. */
  | "no-answer"
  /** The SSH server answered but did not take the project key for this user. */
  | "key-refused"
  /** Nothing listens on the host port: QEMU's forward is gone. */
  | "port-closed";

const PATTERNS: [SshFailure, RegExp][] = [
  ["key-refused", /Permission denied \(/],
  ["no-answer", /timed out|Connection timeout/i],
  ["port-closed", /connect to host .* Connection refused/],
  [
    "no-server",
    /kex_exchange_identification|ssh_exchange_identification|Connection (reset by peer|closed by remote host)|Connection closed by \S+ port \d+/,
  ],
];

/** Recognises ssh's own failure to reach or log into a guest; undefined for anything else. */
export function classifySshFailure(stderr: string): SshFailure | undefined {
  return PATTERNS.find(([, pattern]) => pattern.test(stderr))?.[0];
}

export interface SshFailureContext {
  vmName: string;
  user: string;
  /** The host side of the guest's SSH forward: `127.0.0.1:40222`. */
  address: string;
  /** The VM has not yet printed its ready line. */
  booting: boolean;
}

/** castra's explanation of a failed login (exit 69), after ssh's own words. */
export function sshFailureError(kind: SshFailure, at: SshFailureContext): UnavailableError {
  const vm = `vm ${at.vmName}`;
  if (kind === "key-refused") {
    return new UnavailableError(`${vm} refused the project's SSH key for user ${at.user}`, {
      detail:
        "The guest's SSH server answered, but did not accept .castra/ssh/id_ed25519 for this user. The guest " +
        "reads the key from castra's metadata service at boot; a different login user, or an image that does " +
        'not read metadata (set metadata = "ec2"), ends here.',
      hint: `check the image's login user (ssh_user of vm ${at.vmName} in castra.toml) and, in \`castra logs\`, that [vm:${at.vmName}:metadata] served public-keys`,
    });
  }
  if (at.booting || kind === "no-answer") {
    const booting = at.booting ? "is still booting: its" : "is running, but its";
    return new UnavailableError(`${vm} ${booting} SSH server does not answer yet`, {
      detail: `ssh reached ${at.address}, which QEMU forwards to the guest's port 22, and got no SSH greeting.`,
      hint: at.booting
        ? "wait until `castra up` says the VM is ready (`castra logs -f` shows the boot), then run `castra ssh` again"
        : "give a slow guest a moment and try again; `castra logs` shows its console, `castra doctor` whether this host emulates (TCG)",
    });
  }
  if (kind === "port-closed") {
    return new UnavailableError(`Nothing listens on ${at.address}, the SSH forward of ${vm}`, {
      detail: "QEMU opens this port while the VM runs; it may have exited since.",
      hint: "`castra status` shows the VM's state; `castra up` starts it again",
    });
  }
  return new UnavailableError(`${vm} has no SSH server answering on its port 22`, {
    detail:
      `QEMU accepted the connection on ${at.address} but nothing in the guest took it: the image has no SSH ` +
      "server, or it has not started.",
    hint: `check the guest's console with \`castra logs\`; for an image without an SSH server, set ssh = false for vm ${at.vmName} in castra.toml`,
  });
}
