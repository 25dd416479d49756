import assert from "node:assert/strict";
import { test } from "node:test";
import type { VmConfig } from "../config/model.js";
import { carriesAll } from "../host/process.js";
import type { ResolvedBaseImage } from "./base-image.js";
import { CONNECTOR_SCRIPT } from "./connector.js";
import type { GuestNetworkPlan } from "./guest-access.js";
import { connectorGuestfwd, metadataGuestfwd } from "./guestfwd.js";
import { buildQemuArgs, escapeOptionValue, qemuIdentities } from "./qemu-args.js";

const paths = { qmpSocket: "/p/.castra/run/devbox.qmp", serialLog: "/p/.castra/logs/devbox-serial.log" };
const byo: ResolvedBaseImage = { path: "/images/devbox.qcow2", format: "qcow2" };

function vm(extra: Partial<VmConfig> = {}): VmConfig {
  return {
    name: "devbox",
    source: { kind: "path", path: byo.path },
    overlay: "/p/.castra/devbox-overlay.qcow2",
    portForwards: [],
    ...extra,
  };
}

/** castra's network without metadata or SSH: the plain shape most tests below compare. */
const network: GuestNetworkPlan = { subnet: "169.254.0.0/16", mac: "52:54:00:aa:bb:cc" };

/** The descriptors launchVm hands QEMU, labelled with their files, and the drive on the overlay's set. */
const fds = (ifType = "virtio") => [
  "-add-fd",
  "fd=3,set=1,opaque=/p/.castra/logs/devbox-serial.log",
  "-add-fd",
  "fd=4,set=2,opaque=/p/.castra/devbox-overlay.qcow2",
  "-add-fd",
  "fd=5,set=2,opaque=/p/.castra/devbox-overlay.qcow2",
  "-drive",
  `file=/dev/fdset/2,format=qcow2,if=${ifType}`,
];

/** The part of every argv after the drive that only depends on the paths. */
const tail = (netdev: string) => [
  "-netdev",
  netdev,
  "-device",
  "virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:cc",
  "-chardev",
  "file,id=serial0,path=/dev/fdset/1",
  "-serial",
  "chardev:serial0",
  "-chardev",
  "socket,id=qmp0,path=/p/.castra/run/devbox.qmp,server=on,wait=off",
  "-mon",
  "chardev=qmp0,mode=control",
];

test("a VM with forwards, 2 CPUs and 2 GiB under TCG gets exactly this argv", () => {
  const args = buildQemuArgs(
    vm({
      cpus: 2,
      memoryBytes: 2 * 1024 ** 3,
      portForwards: [
        { host: 2222, guest: 22, protocol: "tcp", hostAddress: "127.0.0.1" },
        { host: 5353, guest: 53, protocol: "udp", hostAddress: "127.0.0.1" },
        { host: 8080, guest: 80, protocol: "tcp", hostAddress: "0.0.0.0" },
      ],
    }),
    byo,
    paths,
    { accel: "tcg", projectName: "demo", network },
  );
  assert.deepEqual(args, [
    "-name",
    "guest=castra:demo:devbox",
    "-machine",
    "q35",
    "-accel",
    "tcg",
    "-smp",
    "2",
    "-m",
    "2048M",
    "-nodefaults",
    "-display",
    "none",
    ...fds(),
    ...tail(
      "user,id=net0,net=169.254.0.0/16,ipv6=off," +
        "hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:5353-:53,hostfwd=tcp:0.0.0.0:8080-:80",
    ),
  ]);
});

test("KVM adds the host CPU model; defaults are 1 CPU and 1024 MiB; memory rounds up to whole MiB", () => {
  const kvm = buildQemuArgs(vm(), byo, paths, { accel: "kvm", projectName: "demo", network });
  assert.deepEqual(kvm.slice(4, 12), ["-accel", "kvm", "-cpu", "host", "-smp", "1", "-m", "1024M"]);
  const odd = buildQemuArgs(vm({ memoryBytes: 1536 * 1024 * 1024 + 1 }), byo, paths, {
    accel: "tcg",
    projectName: "x",
    network,
  });
  assert.equal(odd[odd.indexOf("-m") + 1], "1537M");
});

test("a boot profile adds kernel, initrd and append verbatim and picks machine, disk interface and resources", () => {
  const base: ResolvedBaseImage = {
    path: "/cache/rootfs.qcow2",
    format: "qcow2",
    boot: {
      kernel: "/cache/vmlinuz",
      initrd: "/cache/initramfs",
      append: "console=ttyS0,115200 root=/dev/vda quiet",
      machine: "pc",
      diskInterface: "ide",
      cpus: 3,
      memoryBytes: 512 * 1024 * 1024,
    },
  };
  const args = buildQemuArgs(vm(), base, paths, { accel: "tcg", projectName: "demo", network });
  assert.deepEqual(args.slice(0, 29), [
    "-name",
    "guest=castra:demo:devbox",
    "-machine",
    "pc",
    "-accel",
    "tcg",
    "-smp",
    "3",
    "-m",
    "512M",
    "-nodefaults",
    "-display",
    "none",
    ...fds("ide"),
    "-kernel",
    "/cache/vmlinuz",
    "-initrd",
    "/cache/initramfs",
    "-append",
    // -append is not an option list: its comma stays single.
    "console=ttyS0,115200 root=/dev/vda quiet",
    "-netdev",
    "user,id=net0,net=169.254.0.0/16,ipv6=off",
  ]);
  // castra.toml wins over the profile.
  const own = buildQemuArgs(vm({ cpus: 1, memoryBytes: 256 * 1024 * 1024 }), base, paths, {
    accel: "tcg",
    projectName: "demo",
    network,
  });
  assert.deepEqual(own.slice(6, 10), ["-smp", "1", "-m", "256M"]);
});

test("commas in paths and names are doubled inside QEMU option lists", () => {
  const args = buildQemuArgs(
    vm({ overlay: "/home/a,b/.castra/devbox-overlay.qcow2" }),
    byo,
    { qmpSocket: "/home/a,b/.castra/run/devbox.qmp", serialLog: "/home/a,b/.castra/logs/devbox-serial.log" },
    { accel: "tcg", projectName: "one,two", network },
  );
  assert.ok(args.includes("guest=castra:one,,two:devbox"));
  assert.ok(args.includes("fd=4,set=2,opaque=/home/a,,b/.castra/devbox-overlay.qcow2"));
  assert.ok(args.includes("fd=3,set=1,opaque=/home/a,,b/.castra/logs/devbox-serial.log"));
  assert.ok(args.includes("socket,id=qmp0,path=/home/a,,b/.castra/run/devbox.qmp,server=on,wait=off"));
  assert.equal(escapeOptionValue("a,,b"), "a,,,,b");
});

test("the metadata guestfwd, the pinned MAC and the automatic SSH forward join the user network", () => {
  const guestfwd = metadataGuestfwd({
    perlPath: "/usr/bin/perl",
    socketPath: "/p,1/.castra/run/devbox-metadata.sock",
    readTimeoutMs: 2000,
    writeTimeoutMs: 10_000,
  });
  const args = buildQemuArgs(
    vm({ portForwards: [{ host: 8080, guest: 80, protocol: "tcp", hostAddress: "127.0.0.1" }] }),
    byo,
    paths,
    {
      accel: "tcg",
      projectName: "demo",
      network: {
        subnet: "169.254.0.0/16",
        mac: "52:54:00:01:02:03",
        guestfwd,
        sshForward: { host: 40222, guest: 22, protocol: "tcp", hostAddress: "127.0.0.1" },
      },
    },
  );
  const netdev = args[args.indexOf("-netdev") + 1];
  assert.equal(
    netdev,
    "user,id=net0,net=169.254.0.0/16,ipv6=off,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:40222-:22," +
      `guestfwd=tcp:169.254.169.254:80-cmd:'/usr/bin/perl' '-e' '${CONNECTOR_SCRIPT.replaceAll(",", ",,")}' ` +
      "'--' '/p,,1/.castra/run/devbox-metadata.sock' '3' '10'",
  );
  assert.equal(args[args.indexOf("-device") + 1], "virtio-net-pci,netdev=net0,mac=52:54:00:01:02:03");
});

test("a custom subnet replaces castra's network and carries no metadata forward", () => {
  const args = buildQemuArgs(vm(), byo, paths, {
    accel: "tcg",
    projectName: "demo",
    network: { subnet: "10.0.2.0/24", mac: "52:54:00:01:02:03" },
  });
  assert.equal(args[args.indexOf("-netdev") + 1], "user,id=net0,net=10.0.2.0/24,ipv6=off");
  assert.ok(!args.some((a) => a.includes("guestfwd") || a.includes("169.254")));
});

test("the broker's connector joins the user network after the metadata forward", () => {
  const brokerGuestfwd = connectorGuestfwd({
    service: "host broker",
    address: "169.254.2.4",
    port: 7070,
    perlPath: "/usr/bin/perl",
    socketPath: "/p/.castra/run/broker.sock",
    readTimeoutMs: 5_000,
    writeTimeoutMs: 300_000,
  });
  const args = buildQemuArgs(vm(), byo, paths, {
    accel: "tcg",
    projectName: "demo",
    network: { ...network, brokerGuestfwd },
  });
  assert.equal(
    args[args.indexOf("-netdev") + 1],
    "user,id=net0,net=169.254.0.0/16,ipv6=off," +
      `guestfwd=tcp:169.254.2.4:7070-cmd:'/usr/bin/perl' '-e' '${CONNECTOR_SCRIPT.replaceAll(",", ",,")}' ` +
      "'--' '/p/.castra/run/broker.sock' '5' '300'",
  );
});

test("the identity is the name and the serial log's descriptor label, both as the argv carries them", () => {
  const args = buildQemuArgs(vm(), byo, paths, { accel: "tcg", projectName: "demo", network });
  const [identity, older] = qemuIdentities("demo", "devbox", paths);
  assert.deepEqual(identity, [
    ["-name", "guest=castra:demo:devbox"],
    ["-add-fd", "fd=3,set=1,opaque=/p/.castra/logs/devbox-serial.log"],
  ]);
  // A QEMU an older castra started got the serial log by path.
  assert.deepEqual(older?.[1], ["-chardev", "file,id=serial0,path=/p/.castra/logs/devbox-serial.log"]);
  assert.ok(identity && carriesAll(args, identity));
  assert.ok(!qemuIdentities("demo", "web", paths).some((other) => carriesAll(args, other)));
  assert.ok(!carriesAll(["sleep", "600"], identity ?? []));
});

test("each mount is a 9p device after the disk: read-only exports as they are, writable ones mapped", () => {
  const mounts = [
    { host: "/home/me/my project,1", guest: "/project", writable: false },
    { host: "/data", guest: "/srv/data", writable: true },
  ];
  const args = buildQemuArgs(vm({ mounts }), byo, paths, { accel: "tcg", projectName: "demo", network });
  const drive = args.indexOf("-drive");
  assert.deepEqual(args.slice(drive + 2, drive + 10), [
    "-fsdev",
    "local,id=share0,path=/home/me/my project,,1,security_model=none,readonly=on",
    "-device",
    "virtio-9p-pci,fsdev=share0,mount_tag=castra0",
    "-fsdev",
    "local,id=share1,path=/data,security_model=mapped-xattr,fmode=0644,dmode=0755",
    "-device",
    "virtio-9p-pci,fsdev=share1,mount_tag=castra1",
  ]);
  assert.equal(args[drive + 10], "-netdev");
  assert.ok(
    !buildQemuArgs(vm({ mounts: [] }), byo, paths, { accel: "tcg", projectName: "d", network }).includes(
      "-fsdev",
    ),
  );
});
