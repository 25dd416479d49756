import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import type { MetadataFlavour } from "../config/model.js";
import { DataError, fsError } from "../errors.js";
import { writeJsonAtomic } from "../host/files.js";

/**
 * What one VM's metadata server serves and where, written by `up` to `<vm>-metadata.json` in the project's
 * private runtime directory (`privateRunDir`: outside the project, so no guest share reaches it) with mode 0600,
 * as it holds the token secret, before it starts the server. Relative paths resolve against this file's
 * directory.
 */
export interface ResponderConfig {
  flavour: MetadataFlavour;
  /** `i-` and 17 hex digits, stable per project and VM (see `instanceIdFor`). */
  instanceId: string;
  /** Served as both `hostname` and `local-hostname`; a valid DNS label (see `guestHostname`). */
  hostname: string;
  /** The address QEMU's DHCP server hands the guest. */
  localIpv4: string;
  /** The guest NIC's MAC address, lower case. */
  mac: string;
  /** OpenSSH public key lines; never a private key. */
  publicKeys: string[];
  /** Read when the server starts and served byte for byte as `latest/user-data`; absent means 404. */
  userDataPath?: string;
  /** Signs IMDSv2 tokens; per VM, random (see `newResponderSecret`). */
  secret: string;
  /** One line per request is appended here (`.castra/logs/<vm>-metadata.log`). */
  logPath: string;
  /** The unix socket the server listens on and QEMU's connector connects to. */
  socketPath: string;
  /** The VM's run record (`run/<vm>.pid`): the server ends itself once that QEMU is gone. */
  vmPidFile: string;
}

export function newResponderSecret(): string {
  return randomBytes(32).toString("base64url");
}

/** An EC2-shaped instance id that stays the same for a project's VM across `up`s. */
export function instanceIdFor(projectName: string, vmName: string): string {
  const digest = createHash("sha256").update(`${projectName}\0${vmName}`).digest("hex");
  return `i-${digest.slice(0, 17)}`;
}

/** A VM name as a hostname label: VM names may hold `_`, which hostnames may not. */
export function guestHostname(vmName: string): string {
  const label = vmName
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .slice(0, 63)
    .replace(/^-+|-+$/g, "");
  return label || "castra";
}

export async function writeResponderConfig(path: string, config: ResponderConfig): Promise<void> {
  validate(config, path);
  await mkdir(dirname(path), { recursive: true }).catch((err) => {
    throw fsError(err, "write the metadata responder configuration", path);
  });
  // 0600, through a temporary file created exclusively; a link at `path` is refused.
  await writeJsonAtomic(path, config);
}

/** Reads and checks a responder configuration; relative paths come back absolute. */
export async function readResponderConfig(path: string): Promise<ResponderConfig> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    if (err instanceof SyntaxError) throw invalid(path, `not JSON: ${err.message}`);
    throw fsError(err, "read the metadata responder configuration", path);
  }
  const config = validate(parsed, path);
  const base = dirname(resolve(path));
  const absolute = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  return {
    ...config,
    logPath: absolute(config.logPath),
    socketPath: absolute(config.socketPath),
    vmPidFile: absolute(config.vmPidFile),
    userDataPath: config.userDataPath === undefined ? undefined : absolute(config.userDataPath),
  };
}

function validate(value: unknown, path: string): ResponderConfig {
  if (typeof value !== "object" || value === null) throw invalid(path, "expected a JSON object");
  const c = value as Record<string, unknown>;
  if (c.flavour !== "ec2" && c.flavour !== "none") throw invalid(path, 'flavour must be "ec2" or "none"');
  for (const key of [
    "instanceId",
    "hostname",
    "localIpv4",
    "mac",
    "secret",
    "logPath",
    "socketPath",
    "vmPidFile",
  ]) {
    if (typeof c[key] !== "string" || c[key] === "") throw invalid(path, `${key} must be a non-empty string`);
  }
  if (
    !Array.isArray(c.publicKeys) ||
    !c.publicKeys.every((k) => typeof k === "string" && !/[\r\n]/.test(k))
  ) {
    throw invalid(path, "publicKeys must be a list of single-line strings");
  }
  if (c.userDataPath !== undefined && (typeof c.userDataPath !== "string" || c.userDataPath === "")) {
    throw invalid(path, "userDataPath must be a non-empty string when present");
  }
  return value as ResponderConfig;
}

function invalid(path: string, detail: string): DataError {
  return new DataError("Invalid metadata responder configuration", {
    detail: `${path}: ${detail}`,
    hint: "run `castra up` again to rewrite it",
  });
}
