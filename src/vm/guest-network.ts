import { createHash } from "node:crypto";
import { cidrContains, numberToIpv4, parseCidr } from "../config/cidr.js";
import { DEFAULT_SUBNET } from "../config/guest-access.js";
import type { VmConfig } from "../config/model.js";
import { METADATA_ADDRESS } from "../config/model.js";

/** The addresses QEMU's user network uses inside a VM's subnet. */
export interface UserNetworkAddresses {
  /** The host as the guest sees it (where the broker is reached). */
  gateway: string;
  dns: string;
  /** The address QEMU's DHCP server leases to the (only) guest. */
  guest: string;
}

export function vmSubnet(vm: Pick<VmConfig, "subnet">): string {
  return vm.subnet ?? DEFAULT_SUBNET;
}

/**
 * QEMU's defaults for `-netdev user,net=<subnet>`: the historic slirp offsets 2.2, 2.3 and 2.15, masked into
 * the network, so 169.254.0.0/16 gives 169.254.2.2 and 10.0.2.0/24 the familiar 10.0.2.2.
 */
export function userNetworkAddresses(subnet: string): UserNetworkAddresses {
  const network = parseCidr(subnet);
  if (!network) throw new Error(`not an IPv4 network: ${subnet}`);
  const base = (network.address & network.mask) >>> 0;
  const at = (offset: number) => numberToIpv4((base | (offset & ~network.mask)) >>> 0);
  return { gateway: at(0x0202), dns: at(0x0203), guest: at(0x020f) };
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
