import { createHash } from "node:crypto";
import { cidrContains, parseCidr } from "../config/cidr.js";
import { DEFAULT_SUBNET } from "../config/guest-access.js";
import type { VmConfig } from "../config/model.js";
import { METADATA_ADDRESS } from "../config/model.js";

export function vmSubnet(vm: Pick<VmConfig, "subnet">): string {
  return vm.subnet ?? DEFAULT_SUBNET;
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
