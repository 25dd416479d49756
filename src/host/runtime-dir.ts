import type { Stats } from "node:fs";
import { join } from "node:path";

/** `$XDG_RUNTIME_DIR/castra`, else `/tmp/castra-<uid>`: private to this user. */
export function shortRuntimeDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg?.startsWith("/")) return join(xdg, "castra");
  return join("/tmp", `castra-${process.getuid?.() ?? "user"}`);
}

/** Owned by the user castra runs as (always true where there are no uids). */
export function isOwnedByUser(info: Stats): boolean {
  const uid = process.getuid?.();
  return uid === undefined || info.uid === uid;
}

/** A real directory (not a link), owned by this user, closed to group and others. */
export function isOwnedPrivateDir(info: Stats): boolean {
  return info.isDirectory() && isOwnedByUser(info) && (info.mode & 0o077) === 0;
}
