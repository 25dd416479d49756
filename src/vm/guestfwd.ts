import { METADATA_ADDRESS } from "../config/model.js";
import { LaunchError } from "../errors.js";
import { type ConnectorOptions, connectorArgv } from "./connector.js";

/** QEMU copies each guestfwd rule into 1024 bytes (NUL included) and silently cuts a longer one off. */
export const QEMU_GUESTFWD_MAX_BYTES = 1023;

/** Where a guest reaches one of castra's services; QEMU relays each connection to its unix socket. */
export interface GuestfwdTarget extends ConnectorOptions {
  /** Named in the error when the rule does not fit. */
  service: string;
  address: string;
  port: number;
}

/**
 * The `guestfwd=` value of QEMU's `-netdev user` that relays each guest connection to `address:port` to a
 * castra service's unix socket through the connector (`connector.ts`). libslirp splits the command with GLib's
 * shell-style parser and runs it without a shell (older builds used `/bin/sh -c`), so every word is
 * single-quoted, which both read the same way, and there is no `exec` (not a program). QEMU's option parser
 * reads `,,` as a comma.
 */
export function connectorGuestfwd(target: GuestfwdTarget): string {
  const command = connectorArgv(target).map(shellQuote).join(" ");
  const rule = `tcp:${target.address}:${target.port}-cmd:${command}`;
  const bytes = Buffer.byteLength(rule);
  if (bytes > QEMU_GUESTFWD_MAX_BYTES) {
    throw new LaunchError(`The ${target.service}'s forwarding rule is too long for QEMU`, {
      detail: `QEMU keeps ${QEMU_GUESTFWD_MAX_BYTES} bytes of a guestfwd rule; with perl at ${target.perlPath} and the socket ${target.socketPath} it would take ${bytes}.`,
      hint: "put a perl with a shorter path first on PATH (e.g. /usr/bin/perl), then run `castra up` again",
    });
  }
  return rule.replaceAll(",", ",,");
}

/** The rule that answers `http://169.254.169.254/` with the VM's metadata server. */
export function metadataGuestfwd(options: ConnectorOptions): string {
  return connectorGuestfwd({ ...options, service: "metadata service", address: METADATA_ADDRESS, port: 80 });
}

/** One shell word that means exactly `value`: single quotes, with `'` written as `'\''`. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
