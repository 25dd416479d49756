/** The umask castra was started with; files made for the user outside `.castra/` (castra.toml) follow it. */
let userUmask = 0o022;

/**
 * From here on, whatever the user's umask, nothing castra or the tools it runs (QEMU, qemu-img, ssh-keygen)
 * create is readable or writable by anyone but the owner: directories 0700, files 0600.
 */
export function makeCreatedFilesPrivate(): void {
  userUmask = process.umask(0o077);
  process.umask(userUmask | 0o077);
}

/** `mode` as the user's own umask would have left it, for files that belong to the user, not to castra. */
export function userMode(mode: number): number {
  return mode & ~userUmask;
}
