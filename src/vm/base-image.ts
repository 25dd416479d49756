import type { MetadataFlavour, Project, VmConfig } from "../config/model.js";
import { DataError } from "../errors.js";
import { runTool } from "../host/tools.js";
import type { QemuProfile } from "../images/catalog-schema.js";
import type { MaterialisedImage } from "../images/ensure-image.js";
import type { ImageEvent } from "../images/events.js";

/** How a base image wants to be booted; filled from the catalog profile for managed images. */
export interface BootProfile {
  kernel?: string;
  initrd?: string;
  append?: string;
  machine?: string;
  /** QEMU `-drive if=` value for the overlay, e.g. "virtio" or "ide". */
  diskInterface?: string;
  readyPattern?: string;
  cpus?: number;
  memoryBytes?: number;
  /** The metadata API the image reads at boot (`alpine-minimal@v1`: "ec2"). */
  metadata?: MetadataFlavour;
  /** The user `castra ssh` logs in as (`alpine-minimal@v1`: "alpine"). */
  loginUser?: string;
}

/** Where a VM's base image is, before anything reads it. */
export interface BaseImageLocation {
  path: string;
  boot?: BootProfile;
}

/** A base image ready to back an overlay: its absolute path, its on-disk format and how to boot it. */
export interface ResolvedBaseImage extends BaseImageLocation {
  /** As `qemu-img info` reports it: "qcow2", "raw", "vmdk"... */
  format: string;
}

/** What `castra up` passes through to the image pipeline when a VM uses a managed image. */
export interface ManagedImageOptions {
  env: NodeJS.ProcessEnv;
  offline?: boolean;
  signal?: AbortSignal;
  onEvent?: (event: ImageEvent) => void;
}

/**
 * Where the base image of `vm` lives. Bring-your-own images are used in place (preflight checks they exist);
 * managed images are materialised under `.castra/images/` first, and their catalog profile says how to boot them.
 */
export async function resolveBaseImage(
  vm: VmConfig,
  project: Project,
  options: ManagedImageOptions,
): Promise<BaseImageLocation> {
  if (vm.source.kind === "path") return { path: vm.source.path };
  // Loaded only here, so a bring-your-own VM never constructs the image manager.
  const { ensureImage } = await import("../images/ensure-image.js");
  const image = await ensureImage(
    { name: vm.source.name, version: vm.source.version },
    { stateDir: project.stateDir, ...options },
  );
  const rootDisk = image.files.root_disk;
  if (!rootDisk) {
    throw new DataError(`Managed image ${image.id}@${image.version} has no root disk`, {
      detail: "Every catalog entry needs an artifact of kind root_disk to back the VM's overlay.",
      hint: "add a root_disk artifact to the entry in your CASTRA_CATALOG file",
    });
  }
  return { path: rootDisk, boot: vm.source.useProfile ? bootProfileOf(image) : undefined };
}

/**
 * The boot hints a VM will get, known before its image is downloaded (CPUs, memory, login user...: the
 * catalog profile without its files), so every check that needs no image runs before any download. An
 * unknown catalog image is found here too.
 */
export async function bootHints(vm: VmConfig, env: NodeJS.ProcessEnv): Promise<BootProfile | undefined> {
  if (vm.source.kind === "path" || !vm.source.useProfile) return undefined;
  const { findEntry, loadCatalog } = await import("../images/catalog.js");
  return profileHints(findEntry(await loadCatalog(env), vm.source.name, vm.source.version).profile);
}

/** The catalog's QEMU profile as boot hints; values in castra.toml win over these later. */
function bootProfileOf(image: MaterialisedImage): BootProfile {
  const p = image.profile;
  return {
    ...profileHints(p),
    kernel: p.kernel && image.files[p.kernel],
    initrd: p.initrd && image.files[p.initrd],
  };
}

function profileHints(p: QemuProfile): BootProfile {
  return {
    append: p.append,
    machine: p.machine,
    diskInterface: p.disk_interface,
    readyPattern: p.ready_pattern,
    cpus: p.cpus,
    memoryBytes: p.memory,
    metadata: p.metadata,
    loginUser: p.login_user,
  };
}

export interface ImageInfo {
  format: string;
  /** The backing file as recorded in the image, resolved to an absolute path by qemu-img. */
  backingFile?: string;
  backingFormat?: string;
  /** A qcow2's external data file: where its guest data really is. */
  dataFile?: string;
}

/** What `qemu-img info` says about an image; an unreadable image is invalid data (exit 65). */
export async function readImageInfo(qemuImg: string, path: string): Promise<ImageInfo> {
  let stdout: string;
  try {
    // -U: a running VM holds a write lock on its overlay; reading metadata is still safe.
    ({ stdout } = await runTool(qemuImg, ["info", "-U", "--output=json", path]));
  } catch (err) {
    const reason = (err as { stderr?: string }).stderr || (err as Error).message;
    throw new DataError(`Cannot read the disk image ${path}`, {
      detail: `qemu-img info failed: ${reason}`,
      hint: `check the file with \`qemu-img info ${path}\`; it must be a disk image QEMU can open`,
      cause: err,
    });
  }
  const info = JSON.parse(stdout) as Record<string, unknown>;
  const text = (key: string) => (typeof info[key] === "string" ? (info[key] as string) : undefined);
  const specific = (info["format-specific"] as { data?: Record<string, unknown> } | undefined)?.data;
  const dataFile =
    typeof specific?.["data-file"] === "string" ? (specific["data-file"] as string) : undefined;
  return {
    format: text("format") ?? "raw",
    backingFile: text("full-backing-filename") ?? text("backing-filename"),
    backingFormat: text("backing-filename-format"),
    ...(dataFile ? { dataFile } : {}),
  };
}

/** The located base image plus its detected format. */
export async function inspectBaseImage(
  qemuImg: string,
  location: BaseImageLocation,
): Promise<ResolvedBaseImage> {
  const { format } = await readImageInfo(qemuImg, location.path);
  return { ...location, format };
}
