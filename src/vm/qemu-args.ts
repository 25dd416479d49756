import { DEFAULT_CPUS, DEFAULT_MEMORY_BYTES, type PortForward, type VmConfig } from "../config/model.js";
import type { Accelerator } from "./accel.js";
import type { ResolvedBaseImage } from "./base-image.js";
import type { GuestNetworkPlan } from "./guest-access.js";
import type { VmPaths } from "./paths.js";
import { shareFsdevOptions, shareTag } from "./shares.js";

const MIB = 1024 * 1024;
export const DEFAULT_MACHINE = "q35";
export const DEFAULT_DISK_INTERFACE = "virtio";

export interface QemuArgOptions {
  accel: Accelerator;
  projectName: string;
  /** Subnet, MAC, metadata guestfwd and the automatic SSH forward (see `prepareGuestNetwork`). */
  network: GuestNetworkPlan;
}

/** CPUs, memory and ready pattern after config, then the image's boot profile, then castra's defaults. */
export interface VmResources {
  cpus: number;
  memoryBytes: number;
  readyPattern?: string;
}

export function vmResources(vm: VmConfig, base: Pick<ResolvedBaseImage, "boot">): VmResources {
  return {
    cpus: vm.cpus ?? base.boot?.cpus ?? DEFAULT_CPUS,
    memoryBytes: vm.memoryBytes ?? base.boot?.memoryBytes ?? DEFAULT_MEMORY_BYTES,
    readyPattern: vm.readyPattern ?? base.boot?.readyPattern,
  };
}

/** QEMU splits option lists on commas; a literal comma inside a value is written twice. */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/** "tcp:127.0.0.1:2222-:22": a user-mode network forward from a host address and port to the guest. */
export function hostForwardRule(forward: PortForward): string {
  return `hostfwd=${forward.protocol}:${forward.hostAddress}:${forward.host}-:${forward.guest}`;
}

/** One virtio-9p device per mount (see `vm/shares.ts`); the guest mounts them once it is ready. */
export function shareArgs(vm: Pick<VmConfig, "mounts">): string[] {
  return (vm.mounts ?? []).flatMap((mount, i) => [
    "-fsdev",
    `local,id=share${i},path=${escapeOptionValue(mount.host)},${shareFsdevOptions(mount)}`,
    "-device",
    `virtio-9p-pci,fsdev=share${i},mount_tag=${shareTag(i)}`,
  ]);
}

/**
 * The complete QEMU argv (without the binary) for one VM. Pure: the same inputs always give the same
 * array, which is also what `/proc/<pid>/cmdline` is compared with to recognise our QEMU.
 */
export function buildQemuArgs(
  vm: VmConfig,
  base: ResolvedBaseImage,
  paths: Pick<VmPaths, "qmpSocket" | "serialLog">,
  options: QemuArgOptions,
): string[] {
  const boot = base.boot ?? {};
  const { cpus, memoryBytes } = vmResources(vm, base);
  const disk = boot.diskInterface ?? DEFAULT_DISK_INTERFACE;
  const { network } = options;
  const forwards = network.sshForward ? [...vm.portForwards, network.sshForward] : vm.portForwards;
  const netdev = [
    "user",
    "id=net0",
    `net=${network.subnet}`,
    ...forwards.map(hostForwardRule),
    // Already escaped for QEMU's option syntax by metadataGuestfwd.
    ...(network.guestfwd ? [`guestfwd=${network.guestfwd}`] : []),
  ].join(",");
  return [
    "-name",
    `guest=${escapeOptionValue(`castra:${options.projectName}:${vm.name}`)}`,
    "-machine",
    boot.machine ?? DEFAULT_MACHINE,
    "-accel",
    options.accel,
    // KVM guests get the host CPU's features; TCG keeps QEMU's portable default model.
    ...(options.accel === "kvm" ? ["-cpu", "host"] : []),
    "-smp",
    String(cpus),
    "-m",
    `${Math.ceil(memoryBytes / MIB)}M`,
    "-nodefaults",
    "-display",
    "none",
    "-drive",
    `file=${escapeOptionValue(vm.overlay)},format=qcow2,if=${disk}`,
    ...shareArgs(vm),
    // -kernel, -initrd and -append take their value verbatim: no comma escaping.
    ...(boot.kernel ? ["-kernel", boot.kernel] : []),
    ...(boot.initrd ? ["-initrd", boot.initrd] : []),
    ...(boot.append ? ["-append", boot.append] : []),
    "-netdev",
    netdev,
    "-device",
    // A pinned MAC: the metadata service names the NIC by it before the guest boots.
    `virtio-net-pci,netdev=net0,mac=${network.mac}`,
    "-chardev",
    `file,id=serial0,path=${escapeOptionValue(paths.serialLog)}`,
    "-serial",
    "chardev:serial0",
    "-chardev",
    `socket,id=qmp0,path=${escapeOptionValue(paths.qmpSocket)},server=on,wait=off`,
    "-mon",
    "chardev=qmp0,mode=control",
  ];
}
