import { createHash } from "node:crypto";
import { cidrContains, parseCidr } from "../config/cidr.js";
import { DEFAULT_SUBNET } from "../config/guest-access.js";
import type { VmConfig } from "../config/model.js";
import { METADATA_ADDRESS } from "../config/model.js";
import { shellQuote } from "../metadata/guestfwd.js";

export function vmSubnet(vm: Pick<VmConfig, "subnet">): string {
  return vm.subnet ?? DEFAULT_SUBNET;
}

/** The hidden command `relayGuestfwd` runs (answered first thing in cli/main.ts). */
export const RELAY_COMMAND = "__relay";

export interface RelayGuestfwdOptions {
  /** Where in the guest's network, and on which port. */
  address: string;
  port: number;
  /** The unix socket each connection is piped to. */
  socket: string;
  nodePath: string;
  cliPath: string;
}

/**
 * The `guestfwd=` value that pipes each guest connection to `address:port` into a unix socket on the host,
 * through `castra __relay` (quoted as `metadataGuestfwd` explains; `,` doubled for QEMU's option parser).
 */
export function relayGuestfwd(o: RelayGuestfwdOptions): string {
  const command = [shellQuote(o.nodePath), shellQuote(o.cliPath), RELAY_COMMAND, shellQuote(o.socket)];
  return `tcp:${o.address}:${o.port}-cmd:${command.join(" ")}`.replaceAll(",", ",,");
}

/** Only inside the VM's own network can castra's guestfwd answer 169.254.169.254; outside it, the host's would. */
export function subnetHoldsMetadataAddress(subnet: string): boolean {
  const network = parseCidr(subnet);
  return network !== undefined && cidrContains(network, METADATA_ADDRESS);
}

/**
 * A locally administered MAC in QEMU's 52:54:00 range, stable per project and VM, so the metadata service
 * can name the guest's NIC before it boots.
 */
export function guestMac(projectName: string, vmName: string): string {
  const digest = createHash("sha256").update(`castra-mac\0${projectName}\0${vmName}`).digest();
  return ["52", "54", "00", ...[0, 1, 2].map((i) => (digest[i] ?? 0).toString(16).padStart(2, "0"))].join(
    ":",
  );
}
