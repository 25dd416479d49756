import { homedir } from "node:os";
import { basename, isAbsolute, join, resolve } from "node:path";
import { type FieldReader, isTable } from "./fields.js";
import { readBroker, readForwards } from "./forwards.js";
import { GUEST_ACCESS_KEYS, readGuestAccess } from "./guest-access.js";
import { MEMORY_EXAMPLE, parseMemorySize } from "./memory.js";
import { type BaseImageSource, CATALOG_NAME, type Project, type VmConfig } from "./model.js";
import { defaultMounts, readMounts } from "./mounts.js";
import { readProvision } from "./provision.js";

export const CONFIG_VERSION = "0.1.0";

const TOP_KEYS = ["version", "project", "vms", "broker"] as const;
const PROJECT_KEYS = ["name"] as const;
const VM_KEYS = [
  "name",
  "base_image",
  "managed_image",
  "overlay",
  "cpus",
  "memory",
  "ready_pattern",
  "port_forwards",
  ...GUEST_ACCESS_KEYS,
  "mounts",
  "provision",
] as const;
const MANAGED_KEYS = ["name", "version", "profile"] as const;

/** VM names become file names (`.castra/<vm>-overlay.qcow2`, `run/<vm>.pid`), so they stay plain. */
const VM_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const MANAGED_EXAMPLE = 'managed_image = { name = "alpine-minimal", version = "v1" }';
const VM_EXAMPLE = `[[vms]]\nname = "devbox"\n${MANAGED_EXAMPLE}`;

export type ValidatedConfig = Pick<Project, "name" | "version" | "vms" | "broker" | "warnings">;

/** Turns parsed castra.toml into the project model; problems are collected in `reader.issues`. */
export function validateConfig(
  raw: Record<string, unknown>,
  rootDir: string,
  reader: FieldReader,
): ValidatedConfig {
  reader.unknownKeys(raw, "", TOP_KEYS);
  const version = readVersion(raw, reader);
  const name = readProjectName(raw, rootDir, reader);
  const vms = readVms(raw, rootDir, reader);
  const broker = raw.broker === undefined ? undefined : readBroker(raw.broker, reader);
  return { name, version, vms, broker, warnings: reader.warnings };
}

function readVersion(raw: Record<string, unknown>, reader: FieldReader): string {
  const example = `version = "${CONFIG_VERSION}"`;
  const version = reader.string(raw, "version", "", example);
  if (version !== undefined && !/^\d+\.\d+(\.\d+)?$/.test(version)) {
    reader.fail("version", `must look like "0.1.0", not ${JSON.stringify(version)}`, example);
  }
  return version ?? CONFIG_VERSION;
}

function readProjectName(raw: Record<string, unknown>, rootDir: string, reader: FieldReader): string {
  // Without a [project] name the directory names the project, as it does for the synthesized default.
  const fallback = basename(rootDir) || "castra";
  if (raw.project === undefined) return fallback;
  const project = reader.table(raw.project, "project", '[project]\nname = "demo"');
  if (!project) return fallback;
  reader.unknownKeys(project, "project", PROJECT_KEYS);
  const name = reader.string(project, "name", "project", 'name = "demo"');
  if (name !== undefined && (name.length > 64 || /\p{Cc}/u.test(name))) {
    reader.fail("project.name", "must be at most 64 characters with no control characters", 'name = "demo"');
  }
  return name ?? fallback;
}

function readVms(raw: Record<string, unknown>, rootDir: string, reader: FieldReader): VmConfig[] {
  if (raw.vms === undefined) return reader.fail("vms", "castra.toml declares no VMs", VM_EXAMPLE) ?? [];
  if (isTable(raw.vms)) {
    return (
      reader.fail(
        "vms",
        "must be written [[vms]] with double brackets (a list of VMs), not [vms]",
        VM_EXAMPLE,
      ) ?? []
    );
  }
  if (!Array.isArray(raw.vms) || raw.vms.length === 0) {
    return reader.fail("vms", "must be one or more [[vms]] tables", VM_EXAMPLE) ?? [];
  }
  const vms: VmConfig[] = [];
  const byName = new Map<string, string>();
  const byOverlay = new Map<string, string>();
  raw.vms.forEach((entry, index) => {
    const path = `vms[${index}]`;
    const vm = readVm(entry, path, rootDir, reader);
    if (!vm) return;
    const sameName = byName.get(vm.name);
    const sameOverlay = byOverlay.get(vm.overlay);
    if (sameName) {
      reader.fail(
        `${path}.name`,
        `"${vm.name}" is already the name of ${sameName}`,
        `name = "${freeName(vm.name, byName)}"`,
      );
    } else if (sameOverlay) {
      reader.fail(
        `${path}.overlay`,
        `${vm.overlay} is already the overlay of ${sameOverlay}`,
        `overlay = ".castra/${vm.name}-overlay.qcow2"`,
      );
    }
    byName.set(vm.name, path);
    byOverlay.set(vm.overlay, path);
    vms.push(vm);
  });
  return vms;
}

/** A name no VM has yet, for the example of a duplicate's error: `web-2`, `web-3`, ... */
function freeName(name: string, taken: Map<string, string>): string {
  for (let n = 2; ; n++) if (!taken.has(`${name}-${n}`)) return `${name}-${n}`;
}

function readVm(entry: unknown, path: string, rootDir: string, reader: FieldReader): VmConfig | undefined {
  const vm = reader.table(entry, path, VM_EXAMPLE);
  if (!vm) return undefined;
  reader.unknownKeys(vm, path, VM_KEYS);
  const issuesBefore = reader.issues.length;
  const name = reader.string(vm, "name", path, 'name = "devbox"', true);
  if (name !== undefined && !VM_NAME.test(name)) {
    const plain =
      name
        .toLowerCase()
        .replace(/[^a-z0-9_-]+/g, "-")
        .replace(/^[-_]+|[-_]+$/g, "")
        .slice(0, 63) || "devbox";
    reader.fail(
      `${path}.name`,
      `${JSON.stringify(name)} is not a valid VM name: use lowercase letters, digits, "-" and "_" (it names files)`,
      `name = "${plain}"`,
    );
  }
  const source = readSource(vm, path, rootDir, reader);
  const overlayText = reader.path(
    vm,
    "overlay",
    path,
    `overlay = ".castra/${name ?? "devbox"}-overlay.qcow2"`,
  );
  const cpus = reader.integer(vm, "cpus", path, { min: 1, max: 1024, example: "cpus = 2" });
  const memoryBytes = readMemory(vm, path, reader);
  const readyPattern = reader.string(vm, "ready_pattern", path, 'ready_pattern = "login:"');
  const portForwards = readForwards(vm.port_forwards, `${path}.port_forwards`, reader);
  const resolvePath = (text: string) => resolveUserPath(text, rootDir);
  const access = readGuestAccess(vm, path, reader, resolvePath);
  const given =
    vm.mounts === undefined ? undefined : readMounts(vm.mounts, `${path}.mounts`, reader, resolvePath);
  const provision =
    vm.provision === undefined ? [] : readProvision(vm.provision, `${path}.provision`, reader, resolvePath);
  if (provision.length > 0 && access.ssh === false) {
    reader.fail(
      `${path}.provision`,
      "runs over SSH, and this VM sets ssh = false",
      "ssh = true (or remove ssh)",
    );
  }
  if (reader.issues.length > issuesBefore || name === undefined || source === undefined) return undefined;
  // A managed image is castra's own and gets the project at /project; a bring-your-own VM only what it asks.
  const mounts = given ?? (source.kind === "managed" ? defaultMounts(rootDir) : []);

  const overlay = overlayText
    ? resolveUserPath(overlayText, rootDir)
    : join(rootDir, ".castra", `${name}-overlay.qcow2`);
  if (source.kind === "path" && source.path === overlay) {
    reader.fail(
      `${path}.overlay`,
      "must not be the base image itself (the overlay is written to)",
      `overlay = ".castra/${name}-overlay.qcow2"`,
    );
    return undefined;
  }
  return {
    name,
    source,
    overlay,
    cpus,
    memoryBytes,
    readyPattern,
    portForwards,
    ...access,
    mounts,
    provision,
  };
}

function readSource(
  vm: Record<string, unknown>,
  path: string,
  rootDir: string,
  reader: FieldReader,
): BaseImageSource | undefined {
  const hasBase = vm.base_image !== undefined;
  const hasManaged = vm.managed_image !== undefined;
  if (hasBase && hasManaged) {
    return reader.fail(
      `${path}.managed_image`,
      "set only one of base_image and managed_image",
      MANAGED_EXAMPLE,
    );
  }
  if (!hasBase && !hasManaged) {
    return reader.fail(
      path,
      "needs an image: set base_image (your own qcow2 file) or managed_image",
      MANAGED_EXAMPLE,
    );
  }
  if (hasBase) {
    const file = reader.path(vm, "base_image", path, 'base_image = "images/devbox.qcow2"');
    return file === undefined ? undefined : { kind: "path", path: resolveUserPath(file, rootDir) };
  }
  const at = `${path}.managed_image`;
  const managed = reader.table(vm.managed_image, at, MANAGED_EXAMPLE);
  if (!managed) return undefined;
  reader.unknownKeys(managed, at, MANAGED_KEYS);
  const name = reader.string(managed, "name", at, MANAGED_EXAMPLE, true);
  const version = reader.string(managed, "version", at, MANAGED_EXAMPLE, true);
  const profile = reader.boolean(
    managed,
    "profile",
    at,
    'managed_image = { name = "alpine-minimal", version = "v1", profile = false }',
  );
  for (const [key, value] of [
    ["name", name],
    ["version", version],
  ] as const) {
    if (value !== undefined && !CATALOG_NAME.test(value)) {
      reader.fail(
        `${at}.${key}`,
        `${JSON.stringify(value)} is not a catalog ${key} (letters, digits, ".", "-", "_")`,
        MANAGED_EXAMPLE,
      );
      return undefined;
    }
  }
  if (name === undefined || version === undefined) return undefined;
  return { kind: "managed", name, version, useProfile: profile ?? true };
}

function readMemory(vm: Record<string, unknown>, path: string, reader: FieldReader): number | undefined {
  const value = vm.memory;
  if (value === undefined) return undefined;
  if (typeof value === "number") {
    // A bare number is ambiguous (bytes? MiB?): ask for a unit, suggesting the likely one.
    return reader.fail(`${path}.memory`, `needs a unit, e.g. "${value} MiB"`, `memory = ${MEMORY_EXAMPLE}`);
  }
  const text = reader.string(vm, "memory", path, `memory = ${MEMORY_EXAMPLE}`);
  if (text === undefined) return undefined;
  try {
    return parseMemorySize(text);
  } catch (err) {
    return reader.fail(`${path}.memory`, (err as Error).message, `memory = ${MEMORY_EXAMPLE}`);
  }
}

/** Relative paths hang off the config file's directory; `~/` is the user's home, as in a shell. */
export function resolveUserPath(text: string, rootDir: string): string {
  if (text === "~" || text.startsWith("~/")) return join(homedir(), text.slice(1));
  return isAbsolute(text) ? resolve(text) : resolve(rootDir, text);
}
