import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, stat, writeFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const MIB = 1024 * 1024;

export interface FileFacts {
  path: string;
  sha256: string;
  size: number;
}

/**
 * A disk-like file: `dataBytes` of incompressible data, then zeros up to `totalBytes` (as a real disk has).
 * Each MiB differs (a counter in its first bytes), so nothing can deduplicate it.
 */
export async function writeDiskFile(path: string, totalBytes: number, dataBytes = totalBytes): Promise<void> {
  const block = randomBytes(MIB);
  const zeros = Buffer.alloc(MIB);
  const handle = await open(path, "w");
  try {
    for (let at = 0; at < totalBytes; at += MIB) {
      const length = Math.min(MIB, totalBytes - at);
      const data = at < dataBytes ? block : zeros;
      if (data === block) block.writeBigUInt64LE(BigInt(at), 0);
      await handle.write(data, 0, length);
    }
  } finally {
    await handle.close();
  }
}

export async function facts(path: string): Promise<FileFacts> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MIB })) hash.update(chunk as Buffer);
  return { path, sha256: hash.digest("hex"), size: (await stat(path)).size };
}

/** A fixed VHD (the raw disk plus its 512-byte footer), as the managed Alpine image is shipped. */
export async function makeFixedVhd(raw: string, vhd: string): Promise<void> {
  const options = "subformat=fixed,force_size=on";
  await run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "vpc", "-o", options, raw, vhd]);
}

export async function makeQcow2(raw: string, qcow2: string): Promise<void> {
  await run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow2]);
}

export type Transform =
  | { type: "strip_vhd_footer" }
  | { type: "qemu_img_convert"; from: string; to: string; output: string }
  | { type: "rename"; output: string };

export interface ArtifactSpec {
  kind: "root_disk" | "kernel" | "initrd";
  file: FileFacts;
  /** Served over HTTP from this URL; default: the file itself as a file: URL (a local copy, no network). */
  url?: string;
  final_name: string;
  transforms?: Transform[];
}

/** The `-append` and ready line of the project's test guest under direct kernel boot. */
export const GUEST_PROFILE = {
  kernel: "kernel",
  initrd: "initrd",
  append: "console=ttyS0 quiet",
  cpus: 1,
  memory: "256 MiB",
  disk_interface: "virtio",
  ready_pattern: "login:",
} as const;

/** Writes a CASTRA_CATALOG file with one entry and returns its path. */
export async function writeCatalog(
  path: string,
  id: string,
  artifacts: ArtifactSpec[],
  profile: Record<string, unknown> = {},
): Promise<string> {
  const entry = {
    id,
    version: "v1",
    artifacts: artifacts.map((a) => ({
      kind: a.kind,
      url: a.url ?? pathToFileURL(a.file.path).href,
      sha256: a.file.sha256,
      size: a.file.size,
      final_name: a.final_name,
      transforms: a.transforms ?? [],
    })),
    profile,
  };
  await writeFile(path, `${JSON.stringify({ images: [entry] }, null, 2)}\n`);
  return path;
}
