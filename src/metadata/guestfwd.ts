import { METADATA_ADDRESS } from "../config/model.js";

/** The hidden CLI command QEMU runs for each guest connection to the metadata address. */
export const METADATA_COMMAND = "__metadata";

export interface MetadataGuestfwdOptions {
  /** Absolute path of the node binary (`process.execPath`). */
  nodePath: string;
  /** Absolute path of castra's CLI script. */
  cliPath: string;
  /**
   * The responder config, relative to QEMU's working directory (`.castra/`), e.g. `run/<vm>-metadata.json`.
   * Give an absolute path when QEMU runs with `-daemonize`: it changes its directory to `/`.
   */
  configRelPath: string;
}

/**
 * The `guestfwd=` value of QEMU's `-netdev user` that answers `http://169.254.169.254/` with castra's responder.
 * libslirp splits the command with GLib's shell-style parser and runs it without a shell (older builds used
 * `/bin/sh -c`), so every value is single-quoted, which both read the same way, and there is no `exec`
 * (not a program). QEMU's option parser reads `,,` as a literal comma.
 */
export function metadataGuestfwd(options: MetadataGuestfwdOptions): string {
  const command = [
    shellQuote(options.nodePath),
    shellQuote(options.cliPath),
    METADATA_COMMAND,
    shellQuote(options.configRelPath),
  ].join(" ");
  return `tcp:${METADATA_ADDRESS}:80-cmd:${command}`.replaceAll(",", ",,");
}

/** One shell word that means exactly `value`: single quotes, with `'` written as `'\''`. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
