import { readFile, stat, writeFile } from "node:fs/promises";
import { BROKER_IDLE_TIMEOUT_MS } from "../broker/server.js";
import { DEFAULT_SUBNET } from "../config/guest-access.js";
import { displayPath } from "../config/load.js";
import {
  DEFAULT_HOST_ADDRESS,
  METADATA_ADDRESS,
  type MetadataFlavour,
  type PortForward,
  type Project,
  type VmConfig,
} from "../config/model.js";
import { fsError, InputMissingError } from "../errors.js";
import { OPEN_PRIVATE } from "../host/private-files.js";
import { METADATA_BOUNDS } from "../metadata/bounds.js";
import {
  guestHostname,
  instanceIdFor,
  newResponderSecret,
  writeResponderConfig,
} from "../metadata/config.js";
import { collectAuthorizedKeys } from "../ssh/authorized-keys.js";
import { ensureProjectKey } from "../ssh/keys.js";
import type { BootProfile } from "./base-image.js";
import { userNetworkAddresses } from "./guest-addresses.js";
import { guestMac, subnetHoldsMetadataAddress, vmSubnet } from "./guest-network.js";
import { connectorGuestfwd, metadataGuestfwd } from "./guestfwd.js";
import { pickFreePort, probePort } from "./host-ports.js";
import { projectPaths, type VmPaths } from "./paths.js";

/** How `castra ssh` reaches a guest; recorded in the VM's pid file at `up`. */
export interface SshEndpoint {
  /** Where to connect on the host: 127.0.0.1 unless the VM's own forward to port 22 listens elsewhere. */
  host: string;
  port: number;
  user: string;
  /** True when castra chose the port; false when the VM declared its own forward to guest port 22. */
  automatic: boolean;
  /** The guest was given the project key (castra serves its metadata): `up` waits until SSH accepts it. */
  keyServed?: boolean;
}

/** What a VM's guest is told and who may log in, settled before anything starts. */
export interface GuestAccess {
  subnet: string;
  /** False with a custom subnet: 169.254.169.254 then lies outside the VM's network and the host's answers. */
  servesMetadata: boolean;
  flavour: MetadataFlavour;
  publicKeys: string[];
  userDataPath?: string;
  /** Login user for `castra ssh`; absent with `ssh = false`. */
  sshUser?: string;
}

/** The `-netdev user` and NIC details `buildQemuArgs` needs. */
export interface GuestNetworkPlan {
  subnet: string;
  mac: string;
  /** The `guestfwd=` value that relays 169.254.169.254 to the VM's metadata server. */
  guestfwd?: string;
  /** The `guestfwd=` value that relays the broker's address and port to its unix socket. */
  brokerGuestfwd?: string;
  /** The 127.0.0.1 forward castra adds for SSH (absent when the VM declares its own or has `ssh = false`). */
  sshForward?: PortForward;
}

/** Config first, then the image's profile; a bring-your-own image gets no metadata unless it asks. */
export function metadataFlavour(vm: VmConfig, boot?: BootProfile): MetadataFlavour {
  return vm.metadata ?? boot?.metadata ?? "none";
}

export function sshLoginUser(vm: VmConfig, boot?: BootProfile): string | undefined {
  if (vm.ssh === false) return undefined;
  return vm.sshUser ?? boot?.loginUser ?? "root";
}

/**
 * Creates the project key when a guest gets keys or SSH, then settles what each guest receives. The
 * warnings name VMs whose custom subnet leaves the host's own metadata service reachable.
 */
export async function settleGuestAccess(
  project: Project,
  vms: { vm: VmConfig; base: { boot?: BootProfile } }[],
): Promise<{ accesses: GuestAccess[]; warnings: string[] }> {
  const needsKey = vms.some(
    ({ vm, base }) => sshLoginUser(vm, base.boot) !== undefined || metadataFlavour(vm, base.boot) === "ec2",
  );
  const key = needsKey ? await ensureProjectKey(project.stateDir, project.name) : undefined;
  const accesses = await Promise.all(
    vms.map(({ vm, base }) => resolveGuestAccess(project, vm, base.boot, key?.publicKey)),
  );
  const warnings = accesses.flatMap((access, i) => {
    if (access.servesMetadata) return [];
    const unserved = access.flavour === "ec2" ? "; castra cannot serve its own metadata there" : "";
    return [
      `vm ${vms[i]?.vm.name}: subnet ${access.subnet} leaves ${METADATA_ADDRESS} outside the guest's network, ` +
        "so the host's own instance-metadata service (on a cloud host: its keys, user-data and credentials) " +
        `is reachable from this guest${unserved}. Remove subnet to keep castra's ${DEFAULT_SUBNET}.`,
    ];
  });
  return { accesses, warnings };
}

/**
 * Settles what the guest receives: the project key plus `authorized_keys` (public keys only), and the
 * user-data file, which must exist. Throws the configuration's mistakes (65, 66) before anything starts.
 */
export async function resolveGuestAccess(
  project: Project,
  vm: VmConfig,
  boot: BootProfile | undefined,
  projectKey: string | undefined,
): Promise<GuestAccess> {
  const subnet = vmSubnet(vm);
  const flavour = metadataFlavour(vm, boot);
  const servesMetadata = subnetHoldsMetadataAddress(subnet);
  // Errors name the field as castra.toml's own messages do: vms[1].authorized_keys[0].
  const field = `vms[${Math.max(0, project.vms.indexOf(vm))}].authorized_keys`;
  const publicKeys =
    projectKey === undefined
      ? []
      : await collectAuthorizedKeys(projectKey, vm.authorizedKeys ?? [], project.rootDir, field);
  if (vm.userData !== undefined) await checkUserData(project, vm.name, vm.userData);
  return {
    subnet,
    servesMetadata,
    flavour,
    publicKeys,
    userDataPath: vm.userData,
    sshUser: sshLoginUser(vm, boot),
  };
}

async function checkUserData(project: Project, vmName: string, path: string): Promise<void> {
  const shown = displayPath(path, project.rootDir);
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw fsError(err, `read user_data of vm ${vmName}`, path);
  });
  if (!info?.isFile()) {
    throw new InputMissingError(
      `user_data of vm ${vmName}: ${shown} ${info ? "is not a file" : "does not exist"}`,
      {
        detail: "castra serves this file byte for byte as latest/user-data to the guest.",
        hint: `create ${shown}, or remove user_data from vm ${vmName} in castra.toml`,
      },
    );
  }
}

function requirePerl(perlPath: string | undefined): string {
  if (perlPath === undefined)
    throw new Error("unreachable: preflight finds perl for a VM that QEMU relays for");
  return perlPath;
}

/** The automatic SSH port this VM had last time, if it was recorded. */
async function rememberedPort(file: string): Promise<number | undefined> {
  const port = Number((await readFile(file, "utf8").catch(() => "")).trim());
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
}

export interface GuestNetworkInput {
  project: Project;
  vm: VmConfig;
  access: GuestAccess;
  paths: Pick<VmPaths, "metadataConfig" | "metadataLog" | "metadataSocket" | "pidFile" | "sshPort">;
  /** perl, which QEMU runs per guest connection to relay it to the metadata server or broker (found by preflight). */
  perlPath: string | undefined;
  /** Host ports (tcp) the project already claims or castra already chose: never picked again. */
  takenPorts: Set<number>;
  /** The automatic SSH port to keep when it is still free (a resumed VM keeps its address). */
  preferredSshPort?: number;
}

/**
 * Right before QEMU starts: writes the metadata server's configuration (0600, with a fresh token secret),
 * picks the SSH port, and returns the network for the QEMU argv and the SSH endpoint for the run record.
 */
export async function prepareGuestNetwork(
  input: GuestNetworkInput,
): Promise<{ network: GuestNetworkPlan; ssh?: SshEndpoint }> {
  const { project, vm, access } = input;
  const mac = guestMac(project.name, vm.name);
  const network: GuestNetworkPlan = { subnet: access.subnet, mac };
  if (access.servesMetadata) {
    const { paths } = input;
    const perlPath = requirePerl(input.perlPath);
    await writeResponderConfig(paths.metadataConfig, {
      flavour: access.flavour,
      instanceId: instanceIdFor(project.name, vm.name),
      hostname: guestHostname(vm.name),
      localIpv4: userNetworkAddresses(access.subnet).guest,
      mac,
      publicKeys: access.flavour === "ec2" ? access.publicKeys : [],
      userDataPath: access.flavour === "ec2" ? access.userDataPath : undefined,
      secret: newResponderSecret(),
      logPath: paths.metadataLog,
      socketPath: paths.metadataSocket,
      vmPidFile: paths.pidFile,
    });
    const { readTimeoutMs, writeTimeoutMs } = METADATA_BOUNDS;
    network.guestfwd = metadataGuestfwd({
      perlPath,
      socketPath: paths.metadataSocket,
      readTimeoutMs,
      writeTimeoutMs,
    });
  }
  if (project.broker) {
    network.brokerGuestfwd = connectorGuestfwd({
      service: "host broker",
      address: userNetworkAddresses(access.subnet).broker,
      port: project.broker.port,
      perlPath: requirePerl(input.perlPath),
      socketPath: projectPaths(project).brokerSocket,
      // The broker greets at once; a guest may then stay connected as long as the broker lets it idle.
      readTimeoutMs: 5_000,
      writeTimeoutMs: BROKER_IDLE_TIMEOUT_MS,
    });
  }
  if (access.sshUser === undefined) return { network };
  const keyServed = access.servesMetadata && access.flavour === "ec2";
  const declared = vm.portForwards.find((f) => f.guest === 22 && f.protocol === "tcp");
  if (declared) {
    const host = declared.hostAddress === "0.0.0.0" ? DEFAULT_HOST_ADDRESS : declared.hostAddress;
    return { network, ssh: { host, port: declared.host, user: access.sshUser, automatic: false, keyServed } };
  }
  // A VM keeps its SSH port across restarts while the port stays free: ssh-config and habits keep working.
  const preferred = input.preferredSshPort ?? (await rememberedPort(input.paths.sshPort));
  const keep =
    preferred !== undefined &&
    !input.takenPorts.has(preferred) &&
    (await probePort(DEFAULT_HOST_ADDRESS, preferred, "tcp")) === undefined;
  const port = keep ? preferred : await pickFreePort(DEFAULT_HOST_ADDRESS, input.takenPorts);
  input.takenPorts.add(port);
  network.sshForward = { host: port, guest: 22, protocol: "tcp", hostAddress: DEFAULT_HOST_ADDRESS };
  // Best effort, and never through a link planted at its name.
  await writeFile(input.paths.sshPort, `${port}\n`, { mode: 0o600, flag: OPEN_PRIVATE.truncate }).catch(
    () => {},
  );
  return {
    network,
    ssh: { host: DEFAULT_HOST_ADDRESS, port, user: access.sshUser, automatic: true, keyServed },
  };
}
