import { METADATA_ADDRESS } from "../config/model.js";
import { LaunchError } from "../errors.js";
import { type ConnectorOptions, connectorArgv } from "./connector.js";

/** QEMU copies each guestfwd rule into 1024 bytes (NUL included) and silently cuts a longer one off. */
export const QEMU_GUESTFWD_MAX_BYTES = 1023;

/**
 * The `guestfwd=` value of QEMU's `-netdev user` that relays `http://169.254.169.254/` to the VM's metadata
 * server through the connector (`connector.ts`). libslirp splits the command with GLib's shell-style parser
 * and runs it without a shell (older builds used `/bin/sh -c`), so every word is single-quoted, which both
 * read the same way, and there is no `exec` (not a program). QEMU's option parser reads `,,` as a comma.
 */
export function metadataGuestfwd(options: ConnectorOptions): string {
  const command = connectorArgv(options).map(shellQuote).join(" ");
  const rule = `tcp:${METADATA_ADDRESS}:80-cmd:${command}`;
  const bytes = Buffer.byteLength(rule);
  if (bytes > QEMU_GUESTFWD_MAX_BYTES) {
    throw new LaunchError("The metadata service's forwarding rule is too long for QEMU", {
      detail: `QEMU keeps ${QEMU_GUESTFWD_MAX_BYTES} bytes of a guestfwd rule; with perl at ${options.perlPath} and the socket ${options.socketPath} it would take ${bytes}.`,
      hint: "put a perl with a shorter path first on PATH (e.g. /usr/bin/perl), then run `castra up` again",
    });
  }
  return rule.replaceAll(",", ",,");
}

/** One shell word that means exactly `value`: single quotes, with `'` written as `'\''`. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
