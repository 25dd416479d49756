import { resolve } from "node:path";
import { DataError } from "../errors.js";
import { runTool } from "../host/tools.js";

/** Keys under which `qemu-img info --output=json` names a file that opening the image makes QEMU open. */
const FILE_KEYS = new Set(["filename", "backing-filename", "full-backing-filename", "data-file"]);

/**
 * Every file other than `path` itself that the disk image at `path` refers to: its backing chain, an
 * external data file, VMDK extents. `format` as the step that reads it will name it; unset, as qemu-img
 * detects it (which is how castra later opens a managed root disk).
 */
export async function referencedFiles(qemuImg: string, path: string, format?: string): Promise<string[]> {
  const own = resolve(path);
  const found = new Set<string>();
  collect(await imageInfo(qemuImg, path, format), found);
  return [...found].filter((file) => resolve(file) !== own);
}

/**
 * Refuses (exit 65, naming the reference) a disk image that refers to any other file: from a catalog, that
 * would hand files of this host (a backing file, `data-file`, a flat extent) to the guest.
 */
export async function refuseReferences(
  qemuImg: string,
  path: string,
  what: string,
  format?: string,
): Promise<void> {
  const references = await referencedFiles(qemuImg, path, format);
  if (references.length === 0) return;
  throw new DataError(`${what} refers to another file: ${references[0]}`, {
    detail:
      `${path}${format ? ` (${format})` : ""} names ${references.join(", ")} as a backing file, data file or ` +
      "disk extent. A catalog image must be one self-contained file: QEMU would read those files on this " +
      "host and give their contents to the guest.",
    hint: "fix the catalog entry (qemu-img convert makes one self-contained file), or use the image as a bring-your-own base_image if the files it names are yours",
  });
}

/** `qemu-img info` as JSON, the whole backing chain; a chain that cannot be opened is read without it. */
async function imageInfo(qemuImg: string, path: string, format?: string): Promise<unknown> {
  const args = (chain: boolean) => [
    "info",
    ...(chain ? ["--backing-chain"] : []),
    "--output=json",
    ...(format ? ["-f", format] : []),
    path,
  ];
  let stdout: string;
  try {
    ({ stdout } = await runTool(qemuImg, args(true)).catch(() => runTool(qemuImg, args(false))));
  } catch (err) {
    const reason = (err as { stderr?: string }).stderr || (err as Error).message;
    throw new DataError(`Cannot inspect the disk image ${path}`, {
      detail: `qemu-img info failed: ${reason}`,
      hint: `check the file with \`qemu-img info ${path}\`; a catalog image must be one disk image QEMU can open on its own`,
      cause: err,
    });
  }
  return JSON.parse(stdout);
}

function collect(value: unknown, found: Set<string>): void {
  if (Array.isArray(value)) for (const item of value) collect(item, found);
  else if (value && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      if (FILE_KEYS.has(key) && typeof item === "string") found.add(item);
      else collect(item, found);
    }
  }
}
