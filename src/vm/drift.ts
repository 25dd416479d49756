import type { PortForward, VmConfig } from "../config/model.js";
import { formatBytes } from "../host/bytes.js";
import { shareArgs } from "./qemu-args.js";
import type { VmRunRecord } from "./state.js";

/** "tcp 127.0.0.1:8080→80", as people read a forward. */
export function describeForward(f: PortForward): string {
  return `${f.protocol} ${f.hostAddress}:${f.host}→${f.guest}`;
}

/**
 * What castra.toml says now that the running QEMU does not have: settings that wait for a restart. Only
 * values the file sets are compared (a default may come from a catalog profile that is not loaded here).
 */
export function pendingChanges(vm: VmConfig, record: VmRunRecord): string[] {
  const changes: string[] = [];
  if (vm.cpus !== undefined && vm.cpus !== record.cpus) changes.push(`cpus ${record.cpus} → ${vm.cpus}`);
  if (vm.memoryBytes !== undefined && vm.memoryBytes !== record.memoryBytes)
    changes.push(`memory ${formatBytes(record.memoryBytes)} → ${formatBytes(vm.memoryBytes)}`);
  // A QEMU started by an older castra did not record its forwards: nothing to compare with.
  if (record.forwards) {
    const running = new Set(record.forwards.map(describeForward));
    const wanted = new Set(vm.portForwards.map(describeForward));
    for (const f of wanted) if (!running.has(f)) changes.push(`forward ${f} added`);
    for (const f of running) if (!wanted.has(f)) changes.push(`forward ${f} removed`);
  }
  // Mounts are devices of the machine: the -fsdev arguments QEMU runs with say which it has.
  const running = new Set(shareDevices(record.argv));
  const wanted = new Set(shareDevices(shareArgs(vm)));
  for (const m of wanted) if (!running.has(m)) changes.push(`mount ${m} added`);
  for (const m of running) if (!wanted.has(m)) changes.push(`mount ${m} removed`);
  return changes;
}

/** "/home/me/proj (read-only)" for each -fsdev of an argv. */
function shareDevices(argv: readonly string[]): string[] {
  return argv.flatMap((arg, i) => {
    if (argv[i - 1] !== "-fsdev") return [];
    const path = /,path=((?:[^,]|,,)*)/.exec(arg)?.[1]?.replaceAll(",,", ",") ?? "?";
    return [`${path} (${arg.includes(",readonly=on") ? "read-only" : "writable"})`];
  });
}
