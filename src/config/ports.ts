import type { PortForward, Project } from "./model.js";

/** Who wants a host port: a VM's forward (the broker takes none: it listens on a unix socket). */
export interface PortClaim {
  owner: { kind: "vm"; vm: string; forward: PortForward };
  hostAddress: string;
  port: number;
  protocol: "tcp" | "udp";
}

/** Two or more claims on the same host port and protocol whose addresses overlap. */
export interface PortConflict {
  port: number;
  protocol: "tcp" | "udp";
  claims: PortClaim[];
}

/** Every host port the project would bind: each forward. */
export function hostPortClaims(project: Project): PortClaim[] {
  return project.vms.flatMap((vm) =>
    vm.portForwards.map((forward) => ({
      owner: { kind: "vm" as const, vm: vm.name, forward },
      hostAddress: forward.hostAddress,
      port: forward.host,
      protocol: forward.protocol,
    })),
  );
}

/**
 * Host ports claimed more than once (within a VM or across VMs). 0.0.0.0 overlaps
 * every address; 127.0.0.1 and 127.0.0.2 do not overlap each other.
 */
export function findPortConflicts(project: Project): PortConflict[] {
  const groups = new Map<string, PortClaim[]>();
  for (const claim of hostPortClaims(project)) {
    const key = `${claim.port}/${claim.protocol}`;
    groups.set(key, [...(groups.get(key) ?? []), claim]);
  }
  const conflicts: PortConflict[] = [];
  for (const claims of groups.values()) {
    const clashing = claims.filter((a) =>
      claims.some((b) => a !== b && addressesOverlap(a.hostAddress, b.hostAddress)),
    );
    const [first] = clashing;
    if (first) conflicts.push({ port: first.port, protocol: first.protocol, claims: clashing });
  }
  return conflicts.sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol));
}

function addressesOverlap(a: string, b: string): boolean {
  return a === b || a === "0.0.0.0" || b === "0.0.0.0";
}

/** "vm devbox (127.0.0.1:2222 → guest 22)": how a claim reads in a conflict message. */
export function describeClaim(claim: PortClaim): string {
  return `vm ${claim.owner.vm} (${claim.hostAddress}:${claim.port} → guest ${claim.owner.forward.guest})`;
}
