/** The validated project model that every command works from, whether read from castra.toml or synthesized. */

export type Protocol = "tcp" | "udp";

export interface PortForward {
  host: number;
  guest: number;
  protocol: Protocol;
  /** Host address the forward listens on; 127.0.0.1 unless the config names another. */
  hostAddress: string;
}

/** Where a VM's base image comes from: a file the user brings, or a catalog image castra materialises. */
export type BaseImageSource =
  | { kind: "path"; path: string }
  | { kind: "managed"; name: string; version: string; useProfile: boolean };

export interface VmConfig {
  name: string;
  source: BaseImageSource;
  /** Absolute path of the per-VM copy-on-write overlay. */
  overlay: string;
  /** Unset means: the catalog profile's hint for managed images, else the castra default. */
  cpus?: number;
  memoryBytes?: number;
  /** A serial-console line that means the guest is ready. */
  readyPattern?: string;
  portForwards: PortForward[];
  /** The guest's user network (`-netdev user,net=`); unset means castra's `169.254.0.0/16`. */
  subnet?: string;
  /** Public key lines or `.pub` paths (relative to rootDir) served to the guest besides the project key. */
  authorizedKeys?: string[];
  /** Absolute path of a file served byte for byte as `latest/user-data`. */
  userData?: string;
  /** Which metadata API the guest gets; unset: the image profile's, else `none`. */
  metadata?: MetadataFlavour;
  /** `false` turns off the automatic 127.0.0.1 forward to the guest's SSH port (and `castra ssh`). */
  ssh?: boolean;
  /** The user `castra ssh` logs in as; unset: the image profile's login user, else `root`. */
  sshUser?: string;
  /** Host directories shared with the guest (9p), mounted in it after it is ready; unset means none. */
  mounts?: MountConfig[];
  /** Steps run in the guest as root over SSH after its mounts are up, in order; unset means none. */
  provision?: ProvisionStep[];
}

/** `[[vms.mounts]]`: a host directory the guest sees at `guest`. */
export interface MountConfig {
  /** Absolute path on the host. */
  host: string;
  /** Absolute path in the guest, never `/`. */
  guest: string;
  /** False: the export itself is read-only, so the guest cannot change the host's files. */
  writable: boolean;
}

/** `once` steps run again only when their text or script changes; `always` steps on every boot. */
export type ProvisionWhen = "once" | "always";

/** `[[vms.provision]]`: a shell command, or a host script copied into the guest and run there. */
export type ProvisionStep =
  | { kind: "run"; command: string; when: ProvisionWhen }
  | { kind: "script"; path: string; when: ProvisionWhen };

/** `ec2`: castra serves an EC2-style instance-metadata subset; `none`: every request gets 404. */
export type MetadataFlavour = "ec2" | "none";

export interface BrokerConfig {
  port: number;
}

export interface ConfigWarning {
  /** Field path as the user wrote it, e.g. `vms[0].foo`. */
  path: string;
  message: string;
  /** `unknown_key` warnings are summarised together; a `notice` (e.g. a forward open to the network) stands alone. */
  kind?: "unknown_key" | "notice";
}

export interface Project {
  name: string;
  /** Directory that relative paths and `.castra/` hang off: the config file's directory, or the cwd. */
  rootDir: string;
  /** Absolute path of castra.toml, or null for the synthesized default project. */
  configPath: string | null;
  synthesized: boolean;
  /** Absolute path of `.castra/`. */
  stateDir: string;
  version: string;
  vms: VmConfig[];
  broker?: BrokerConfig;
  warnings: ConfigWarning[];
}

export const DEFAULT_HOST_ADDRESS = "127.0.0.1";
/** Where guests look for instance metadata; castra answers it inside each VM's own network. */
export const METADATA_ADDRESS = "169.254.169.254";
/** Catalog ids and versions become one directory level under `.castra/images/`: plain names, no `..`. */
export const CATALOG_NAME = /^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const DEFAULT_VM_NAME = "alpine";
/** Where the project directory appears in the guest, unless a mount says otherwise. */
export const DEFAULT_MOUNT_POINT = "/project";
export const DEFAULT_MANAGED_IMAGE = { name: "alpine-minimal", version: "v1" } as const;
/** Used for VMs with no cpus/memory in castra.toml and no catalog hint. */
export const DEFAULT_CPUS = 1;
export const DEFAULT_MEMORY_BYTES = 1024 * 1024 * 1024;
