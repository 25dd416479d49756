import { posix } from "node:path";
import { type FieldReader, joinPath } from "./fields.js";
import { DEFAULT_MOUNT_POINT, type MountConfig } from "./model.js";

/** Reads `[[vms.mounts]]`: host directories the guest sees, read-only unless `writable = true`. */

const MOUNT_KEYS = ["host", "guest", "writable"] as const;
const MOUNT_EXAMPLE = '[[vms.mounts]]\nhost = "."\nguest = "/project"';
const GUEST_EXAMPLE = `guest = "${DEFAULT_MOUNT_POINT}"`;
/** Each mount is one PCI device; a handful is plenty and keeps QEMU's bus from filling up. */
export const MAX_MOUNTS = 16;

/** The project directory, read-only at /project: what a VM gets when castra.toml does not say. */
export function defaultMounts(rootDir: string): MountConfig[] {
  return [{ host: rootDir, guest: DEFAULT_MOUNT_POINT, writable: false }];
}

export function readMounts(
  value: unknown,
  path: string,
  reader: FieldReader,
  resolvePath: (text: string) => string,
): MountConfig[] {
  if (Array.isArray(value) && value.length > MAX_MOUNTS) {
    return (
      reader.fail(path, `has ${value.length} mounts; at most ${MAX_MOUNTS} are allowed`, MOUNT_EXAMPLE) ?? []
    );
  }
  const mounts: MountConfig[] = [];
  const byGuest = new Map<string, string>();
  for (const { table, at } of reader.tableList(value, path, MOUNT_KEYS, MOUNT_EXAMPLE)) {
    const host = table.host === undefined ? "." : reader.path(table, "host", at, 'host = "."');
    const guest = readGuestPath(table, at, reader);
    const writable = reader.boolean(table, "writable", at, "writable = true") ?? false;
    if (host === undefined || guest === undefined) continue;
    const same = byGuest.get(guest);
    if (same) {
      reader.fail(joinPath(at, "guest"), `${guest} is already the mount point of ${same}`, GUEST_EXAMPLE);
      continue;
    }
    byGuest.set(guest, at);
    mounts.push({ host: resolvePath(host), guest, writable });
  }
  return mounts;
}

/** An absolute guest path other than `/`, written plainly: it becomes a mount point inside the guest. */
function readGuestPath(table: Record<string, unknown>, at: string, reader: FieldReader): string | undefined {
  if (table.guest === undefined) return DEFAULT_MOUNT_POINT;
  const text = reader.path(table, "guest", at, GUEST_EXAMPLE);
  if (text === undefined) return undefined;
  const field = joinPath(at, "guest");
  if (!text.startsWith("/"))
    return reader.fail(field, `must be an absolute path, not ${JSON.stringify(text)}`, GUEST_EXAMPLE);
  const segments = text.split("/").filter((s) => s !== "");
  if (segments.some((s) => s === "." || s === "..")) {
    return reader.fail(field, `must not contain "." or ".." (${JSON.stringify(text)})`, GUEST_EXAMPLE);
  }
  const normal = posix.normalize(text).replace(/\/+$/, "");
  if (normal === "") return reader.fail(field, "must not be / (the guest's root)", GUEST_EXAMPLE);
  return normal;
}
