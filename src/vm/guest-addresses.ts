import { numberToIpv4, parseCidr } from "../config/cidr.js";
import { DEFAULT_SUBNET } from "../config/guest-access.js";

/** The addresses QEMU's user network uses inside a VM's subnet. */
export interface UserNetworkAddresses {
  /** The host as the guest sees it: every service on the host's loopback is reachable here. */
  gateway: string;
  dns: string;
  /** Where the guest reaches castra's host broker (QEMU relays it to the broker's unix socket). */
  broker: string;
  /** The address QEMU's DHCP server leases to the (only) guest. */
  guest: string;
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
  return { gateway: at(0x0202), dns: at(0x0203), broker: at(0x0204), guest: at(0x020f) };
}

/** "169.254.2.4:7070": where guests on the default subnet reach the broker, as commands print it. */
export function brokerAddressShown(port: number): string {
  return `${userNetworkAddresses(DEFAULT_SUBNET).broker}:${port}`;
}
