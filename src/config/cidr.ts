/** An IPv4 network such as `169.254.0.0/16`, as 32-bit numbers. */
export interface Ipv4Network {
  address: number;
  prefix: number;
  mask: number;
}

/** Parses `a.b.c.d/n`; undefined unless it is an IPv4 address and a prefix length 0-32. */
export function parseCidr(text: string): Ipv4Network | undefined {
  const match = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text.trim());
  if (!match?.[1] || !match[2] || !isIPv4(match[1])) return undefined;
  const prefix = Number(match[2]);
  if (prefix > 32) return undefined;
  // `>>> 0` keeps the numbers unsigned: JavaScript's bit operators work on signed 32-bit integers.
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { address: ipv4ToNumber(match[1]), prefix, mask };
}

const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]\\d|\\d)";
const IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);

/** A dotted-quad IPv4 address without leading zeros, as `net.isIPv4` reads it (without loading `net`). */
export function isIPv4(text: string): boolean {
  return IPV4.test(text);
}

export function ipv4ToNumber(address: string): number {
  return address.split(".").reduce((n, octet) => (n * 256 + Number(octet)) >>> 0, 0);
}

export function numberToIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => (n >>> shift) & 0xff).join(".");
}

/** The network written with its host bits cleared: `10.0.2.7/24` → `10.0.2.0/24`. */
export function canonicalCidr(network: Ipv4Network): string {
  return `${numberToIpv4((network.address & network.mask) >>> 0)}/${network.prefix}`;
}

export function cidrContains(network: Ipv4Network, address: string): boolean {
  return (ipv4ToNumber(address) & network.mask) >>> 0 === (network.address & network.mask) >>> 0;
}
