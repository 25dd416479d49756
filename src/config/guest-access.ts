import { canonicalCidr, cidrContains, parseCidr } from "./cidr.js";
import { describe, type FieldReader, joinPath } from "./fields.js";
import { METADATA_ADDRESS, type MetadataFlavour, type VmConfig } from "./model.js";

/** Reads a VM's network, metadata and SSH settings: how the guest is reached and what it is told. */

export const GUEST_ACCESS_KEYS = [
  "subnet",
  "authorized_keys",
  "user_data",
  "metadata",
  "ssh",
  "ssh_user",
] as const;

/** castra's link-local network: it contains 169.254.169.254, so castra's metadata service can answer there. */
export const DEFAULT_SUBNET = "169.254.0.0/16";

const KEYS_EXAMPLE = 'authorized_keys = ["~/.ssh/id_ed25519.pub"]';
const SUBNET_EXAMPLE = 'subnet = "10.0.2.0/24"';
const METADATA_EXAMPLE = 'metadata = "ec2"';
/** A login name as useradd accepts it; it becomes `user@127.0.0.1` on ssh's command line. */
const USER_NAME = /^[a-z_][a-z0-9_.-]{0,31}$/i;

export type GuestAccess = Pick<
  VmConfig,
  "subnet" | "authorizedKeys" | "userData" | "metadata" | "ssh" | "sshUser"
>;

export function readGuestAccess(
  vm: Record<string, unknown>,
  path: string,
  reader: FieldReader,
  resolvePath: (text: string) => string,
): GuestAccess {
  const subnet = readSubnet(vm, path, reader);
  const authorizedKeys = readAuthorizedKeys(vm.authorized_keys, joinPath(path, "authorized_keys"), reader);
  const userDataText = reader.path(vm, "user_data", path, 'user_data = "cloud-init/user-data.sh"');
  const metadata = readMetadata(vm, path, reader);
  const ssh = reader.boolean(vm, "ssh", path, "ssh = false");
  const sshUser = reader.string(vm, "ssh_user", path, 'ssh_user = "alpine"');
  if (sshUser !== undefined && !USER_NAME.test(sshUser)) {
    reader.fail(
      joinPath(path, "ssh_user"),
      `${JSON.stringify(sshUser)} is not a login name (letters, digits, "_", "-", ".")`,
      'ssh_user = "alpine"',
    );
  }
  if (metadata === "ec2" && subnet !== undefined && !cidrContains(mustParse(subnet), METADATA_ADDRESS)) {
    reader.fail(
      joinPath(path, "metadata"),
      `"ec2" needs ${METADATA_ADDRESS} inside the VM's network, and subnet ${subnet} does not contain it`,
      `${METADATA_EXAMPLE} (and no subnet), or remove metadata`,
    );
  }
  const access: GuestAccess = {
    subnet,
    authorizedKeys,
    userData: userDataText === undefined ? undefined : resolvePath(userDataText),
    metadata,
    ssh,
    sshUser,
  };
  // Only the settings castra.toml gives: an unset key stays absent from the model.
  return Object.fromEntries(Object.entries(access).filter(([, v]) => v !== undefined)) as GuestAccess;
}

function readSubnet(vm: Record<string, unknown>, path: string, reader: FieldReader): string | undefined {
  const text = reader.string(vm, "subnet", path, SUBNET_EXAMPLE);
  if (text === undefined) return undefined;
  const network = parseCidr(text);
  const at = joinPath(path, "subnet");
  if (!network) {
    return reader.fail(
      at,
      `must be an IPv4 network like "10.0.2.0/24", not ${JSON.stringify(text)}`,
      SUBNET_EXAMPLE,
    );
  }
  // QEMU's user network places its gateway at .2, DNS at .3 and the first guest at .15.
  if (network.prefix < 8 || network.prefix > 27) {
    return reader.fail(at, `needs a prefix length from /8 to /27, not /${network.prefix}`, SUBNET_EXAMPLE);
  }
  const canonical = canonicalCidr(network);
  if (canonical !== text.trim()) {
    return reader.fail(at, `has host bits set: the network is ${canonical}`, `subnet = "${canonical}"`);
  }
  return canonical;
}

function mustParse(cidr: string) {
  const network = parseCidr(cidr);
  if (!network) throw new Error(`unreachable: ${cidr} was validated`);
  return network;
}

function readAuthorizedKeys(value: unknown, path: string, reader: FieldReader): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) {
    return reader.fail(path, `must be a list of strings, not ${describe(value)}`, KEYS_EXAMPLE);
  }
  const entries: string[] = [];
  value.forEach((entry, index) => {
    const at = `${path}[${index}]`;
    if (typeof entry !== "string") {
      reader.fail(at, `must be a string, not ${describe(entry)}`, KEYS_EXAMPLE);
    } else if (entry.trim() === "") {
      reader.fail(at, "must not be empty", KEYS_EXAMPLE);
    } else if (/\p{Cc}/u.test(entry)) {
      // One key per entry: a line break would smuggle a second line into the guest's authorized_keys.
      reader.fail(at, "must be one key line or one path, without line breaks", KEYS_EXAMPLE);
    } else {
      entries.push(entry.trim());
    }
  });
  return entries;
}

function readMetadata(
  vm: Record<string, unknown>,
  path: string,
  reader: FieldReader,
): MetadataFlavour | undefined {
  return reader.choice(vm, "metadata", path, ["ec2", "none"], METADATA_EXAMPLE);
}
