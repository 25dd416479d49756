import type { TestGuest } from "./guest.js";

export interface GuestCatalogOptions {
  /** Where each file is fetched from: `http://127.0.0.1:N/<name>`, a `file:` URL... */
  urlOf: (name: string) => string;
  /** Catalog id (default alpine-minimal, so an empty directory's `castra up` boots it). */
  id?: string;
  /** The kernel command line: `console=ttyS0 quiet` plus the guest's `castra.*` words. */
  append: string;
  /** Stands in for the root disk's real sha256 (a catalog that a tampered download must fail). */
  rootSha256?: string;
  /** Profile fields over the defaults (1 CPU, 256 MiB, virtio, ready at `login:`). */
  profile?: Record<string, unknown>;
}

/**
 * A `CASTRA_CATALOG` document whose one entry is the test guest: its fixed VHD as the root disk (footer
 * stripped, converted to qcow2), booted by direct kernel boot with `append`.
 */
export function guestCatalog(guest: TestGuest, options: GuestCatalogOptions) {
  const artifact = (kind: string, name: string, finalName: string, sha256 = guest.sha256[name]) => ({
    kind,
    url: options.urlOf(name),
    sha256,
    size: guest.size[name],
    final_name: finalName,
    transforms:
      kind === "root_disk"
        ? [
            { type: "strip_vhd_footer" },
            { type: "qemu_img_convert", from: "raw", to: "qcow2", output: finalName },
          ]
        : [],
  });
  return {
    images: [
      {
        id: options.id ?? "alpine-minimal",
        version: "v1",
        artifacts: [
          artifact("root_disk", "rootfs.vhd", "rootfs.qcow2", options.rootSha256),
          artifact("kernel", "vmlinuz", "vmlinuz"),
          artifact("initrd", "initramfs.cpio.gz", "initramfs.cpio.gz"),
        ],
        profile: {
          kernel: "kernel",
          initrd: "initrd",
          append: options.append,
          cpus: 1,
          memory: "256 MiB",
          disk_interface: "virtio",
          ready_pattern: "login:",
          ...options.profile,
        },
      },
    ],
  };
}
