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
 * Descriptors `launchVm` opens (never through a link) and hands QEMU as these fds, so QEMU itself opens no
 * path inside `.castra/`: the serial log (truncated per boot) and the overlay, read-write and read-only.
 */
export const QEMU_FDS = { serialLog: 3, overlay: 4, overlayReadOnly: 5 } as const;
const FD_SET = { serialLog: 1, overlay: 2 } as const;

/** `-add-fd`: a descriptor in a QEMU fd set, labelled with the path it was opened from. */
function addFd(fd: number, set: number, path: string): [string, string] {
  return ["-add-fd", `fd=${fd},set=${set},opaque=${escapeOptionValue(path)}`];
}

/** `-name guest=castra:<project>:<vm>`: how people (and `ps`) tell castra's QEMUs apart. */
function nameOption(projectName: string, vmName: string): [string, string] {
  return ["-name", `guest=${escapeOptionValue(`castra:${projectName}:${vmName}`)}`];
}

/**
 * The options fixed by the configuration alone: the VM's name, and the descriptor labelled with its serial
 * log (which only this project's directory and VM name give). A live process carrying both is this VM's
 * QEMU; a pid file is never believed on its own (see `vmStatus`). The second form is how castra gave QEMU
 * the serial log before descriptors, so a VM that an older castra started is still recognised.
 */
export function qemuIdentities(projectName: string, vmName: string, paths: Pick<VmPaths, "serialLog">) {
  const name = nameOption(projectName, vmName);
  return [
    [name, addFd(QEMU_FDS.serialLog, FD_SET.serialLog, paths.serialLog)],
    [name, ["-chardev", `file,id=serial0,path=${escapeOptionValue(paths.serialLog)}`]],
  ];
}

/** The serial log a castra QEMU's argv names (either form of `qemuIdentities`), commas unescaped. */
export function serialLogOf(argv: readonly string[]): string | undefined {
  const label = `fd=${QEMU_FDS.serialLog},set=${FD_SET.serialLog},opaque=`;
  const byPath = "file,id=serial0,path=";
  const labelled = argv.find((a) => a.startsWith(label));
  const older = argv.find((a) => a.startsWith(byPath) && !a.startsWith(`${byPath}/dev/fdset/`));
  const value = labelled ? labelled.slice(label.length) : older?.slice(byPath.length);
  return value?.replaceAll(",,", ",");
}

/**
 * The complete QEMU argv (without the binary) for one VM. Pure: the same inputs always give the same
 * array. QEMU reaches its serial log and overlay only through the descriptors of `QEMU_FDS`.
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
    // No IPv6: slirp would route it to the host's own services, such as EC2's metadata at fd00:ec2::254.
    "ipv6=off",
    ...forwards.map(hostForwardRule),
    // Already escaped for QEMU's option syntax by metadataGuestfwd and relayGuestfwd.
    ...(network.guestfwd ? [`guestfwd=${network.guestfwd}`] : []),
    ...(network.brokerGuestfwd ? [`guestfwd=${network.brokerGuestfwd}`] : []),
  ].join(",");
  return [
    ...nameOption(options.projectName, vm.name),
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
    ...addFd(QEMU_FDS.serialLog, FD_SET.serialLog, paths.serialLog),
    ...addFd(QEMU_FDS.overlay, FD_SET.overlay, vm.overlay),
    ...addFd(QEMU_FDS.overlayReadOnly, FD_SET.overlay, vm.overlay),
    "-drive",
    `file=/dev/fdset/${FD_SET.overlay},format=qcow2,if=${disk}`,
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
    `file,id=serial0,path=/dev/fdset/${FD_SET.serialLog}`,
    "-serial",
    "chardev:serial0",
    "-chardev",
    `socket,id=qmp0,path=${escapeOptionValue(paths.qmpSocket)},server=on,wait=off`,
    "-mon",
    "chardev=qmp0,mode=control",
  ];
}
