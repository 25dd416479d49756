import type { MountConfig } from "../config/model.js";
import { pasteable } from "../host/shell-words.js";

/**
 * How a VM's mounts reach its guest: one virtio-9p device per mount, named by its position, and the options
 * the guest mounts it with. Chosen from the measurements in test/fixtures/README.md ("9p findings").
 */

/** The 9p mount tag of the VM's `index`th mount (what the guest passes to `mount -t 9p`). */
export function shareTag(index: number): string {
  return `castra${index}`;
}

/**
 * The host side. Read-only shares use `none` (host owners, modes and symlinks as they are) under `readonly=on`;
 * writable ones `mapped-xattr`: whatever the guest creates is an ordinary 0644/0755 file of the user running
 * QEMU, with the guest's owner and mode kept in xattrs, so a guest can plant no symlink, device or
 * executable bit on the host.
 */
export function shareFsdevOptions(mount: MountConfig): string {
  return mount.writable
    ? "security_model=mapped-xattr,fmode=0644,dmode=0755"
    : "security_model=none,readonly=on";
}

/**
 * The guest side: 512000 is the largest msize virtio takes (reads 2–4× faster than the default 128 KiB);
 * `cache=mmap` shows host changes at once (loose and fscache served stale data) and keeps shared mmap working.
 */
export const GUEST_MOUNT_OPTIONS = "trans=virtio,version=9p2000.L,msize=512000,cache=mmap";

/** The line a user can run in the guest (as root) to mount a share castra could not mount itself. */
export function manualMountLine(index: number, mount: MountConfig): string {
  const ro = mount.writable ? "" : "ro,";
  const dir = pasteable(mount.guest);
  return `mkdir -p ${dir} && mount -t 9p -o ${ro}${GUEST_MOUNT_OPTIONS} ${shareTag(index)} ${dir}`;
}
