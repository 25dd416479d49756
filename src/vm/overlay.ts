import { rm } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { CannotCreateError, DataError, fsError } from "../errors.js";
import { ensureDir, exists } from "../host/files.js";
import { openPrivate, refuseLink } from "../host/private-files.js";
import { runTool } from "../host/tools.js";
import { checkBaseIdentity, recordBaseIdentity } from "./base-identity.js";
import { type ResolvedBaseImage, readImageInfo } from "./base-image.js";

export type OverlayOutcome = "created" | "reused";

/**
 * Makes sure `overlay` is a qcow2 backed by `base`. An existing overlay is user data: it is reused when it
 * is backed by this base, and an error (exit 65) when it is backed by anything else; never recreated.
 */
export async function ensureOverlay(
  qemuImg: string,
  overlay: string,
  base: ResolvedBaseImage,
  vmName: string,
): Promise<OverlayOutcome> {
  const basePath = resolve(base.path);
  // The guest's disk is never reached through a link: one planted there could point at any file.
  await refuseLink(overlay);
  if (await exists(overlay)) {
    const info = await readImageInfo(qemuImg, overlay);
    const backing = info.backingFile ? resolve(dirname(overlay), info.backingFile) : undefined;
    // castra never makes one: a data file would let whoever wrote the header hand any host file to the guest.
    if (info.dataFile) {
      throw new DataError(`The overlay of vm ${vmName} keeps its data in another file: ${info.dataFile}`, {
        detail:
          `${overlay} names an external data file, which castra never creates. Something other than castra ` +
          "changed it (a guest with a writable mount of the project can); QEMU would read that file as the disk.",
        hint: `move the overlay away (mv ${overlay} ${overlay}.old) to start fresh, after checking ${info.dataFile}`,
      });
    }
    if (backing === basePath) {
      await checkBaseIdentity(overlay, basePath, vmName);
      return "reused";
    }
    throw new DataError(`The overlay of vm ${vmName} belongs to another base image`, {
      detail:
        `${overlay} is backed by ${backing ?? "no base image at all"}, but vm ${vmName} now uses ${basePath}.\n` +
        "The overlay holds the guest's changes, so castra neither recreates nor deletes it.",
      hint: `move the overlay away (mv ${overlay} ${overlay}.old) to start fresh, or point base_image back at ${backing ?? "its base"}`,
    });
  }
  try {
    await ensureDir(dirname(overlay), 0o700);
  } catch (err) {
    throw fsError(err, "create the overlay directory", dirname(overlay));
  }
  // Created here first, exclusively and 0600: qemu-img then fills castra's own new file, nothing else.
  await (await openPrivate(overlay, "create", `create the overlay of vm ${vmName}`)).close();
  try {
    await runTool(qemuImg, ["create", "-q", "-f", "qcow2", "-F", base.format, "-b", basePath, overlay]);
  } catch (err) {
    await rm(overlay, { force: true });
    const reason = (err as { stderr?: string }).stderr || (err as Error).message;
    throw new CannotCreateError(`Cannot create the overlay of vm ${vmName}`, {
      detail: `qemu-img create ${overlay} (backed by ${basePath}) failed: ${reason}`,
      hint: `check that ${dirname(overlay)} is writable and ${basePath} is readable, then run \`castra up\` again`,
      cause: err,
    });
  }
  await recordBaseIdentity(overlay, basePath);
  return "created";
}
