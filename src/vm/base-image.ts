import type { Project, VmConfig } from "../config/model.js";
import { DataError, LaunchError } from "../errors.js";
import { runTool } from "./host-tools.js";

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

/**
 * Where the base image of `vm` lives. Bring-your-own images are used in place (preflight checks they exist);
 * managed images are not wired into the VM lifecycle yet.
 */
export async function resolveBaseImage(vm: VmConfig, project: Project): Promise<BaseImageLocation> {
  if (vm.source.kind === "path") return { path: vm.source.path };
  const what = project.synthesized ? "the default Alpine VM (no castra.toml here)" : `vm ${vm.name}`;
  throw new LaunchError(`Managed images cannot be booted by this castra yet`, {
    detail: `${what} uses managed_image ${vm.source.name}@${vm.source.version}, which \`castra up\` does not download yet.`,
    hint: `write a castra.toml (\`castra init\`) whose VM sets base_image = "path/to/your.qcow2", then run \`castra up\``,
  });
}

export interface ImageInfo {
  format: string;
  /** The backing file as recorded in the image, resolved to an absolute path by qemu-img. */
  backingFile?: string;
  backingFormat?: string;
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
  return {
    format: text("format") ?? "raw",
    backingFile: text("full-backing-filename") ?? text("backing-filename"),
    backingFormat: text("backing-filename-format"),
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
