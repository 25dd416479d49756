import { execFile } from "node:child_process";
import { open, truncate } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { DataError, fsError, InterruptedError, IoError } from "../errors.js";
import { unshareFile } from "./file-placement.js";

/** Disk formats a catalog may name; they end up in qemu-img's argv, so the list is closed. */
export const DISK_FORMATS = ["raw", "qcow2", "vpc", "vhdx", "vmdk", "vdi", "qed"] as const;
export type DiskFormat = (typeof DISK_FORMATS)[number];

const FOOTER_BYTES = 512;
const VHD_COOKIE = "conectix";
const VHD_FIXED = 2;

/**
 * Drops a fixed VHD's 512-byte footer after checking its `conectix` cookie; what remains is the raw disk.
 * The truncation is in place, so a file that shares its inode with another name is first given its own.
 */
export async function stripVhdFooter(path: string): Promise<void> {
  // A hard link to a download-cache blob shares its bytes: truncate a copy of its own, never the blob.
  await unshareFile(path).catch((err) => {
    throw fsError(err, "copy the download before stripping its footer", path);
  });
  let size: number;
  const footer = Buffer.alloc(FOOTER_BYTES);
  try {
    const handle = await open(path, "r");
    try {
      size = (await handle.stat()).size;
      if (size >= FOOTER_BYTES) await handle.read(footer, 0, FOOTER_BYTES, size - FOOTER_BYTES);
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw fsError(err, "read the VHD footer", path);
  }
  if (size < FOOTER_BYTES || footer.toString("latin1", 0, 8) !== VHD_COOKIE) {
    throw new DataError(`${basename(path)} is not a VHD: no "${VHD_COOKIE}" footer`, {
      detail: `${path}: the last ${FOOTER_BYTES} bytes do not start with the VHD cookie, so there is no footer to strip`,
      hint: "the catalog entry's transforms do not match its file: drop strip_vhd_footer or fix the URL",
    });
  }
  const diskType = footer.readUInt32BE(60);
  if (diskType !== VHD_FIXED) {
    throw new DataError(`${basename(path)} is not a fixed VHD (disk type ${diskType})`, {
      detail: "only a fixed VHD is a raw disk plus a footer; a dynamic or differencing VHD needs conversion",
      hint: 'replace strip_vhd_footer with { "type": "qemu_img_convert", "from": "vpc", ... } in the catalog entry',
    });
  }
  try {
    await truncate(path, size - FOOTER_BYTES);
  } catch (err) {
    throw fsError(err, "strip the VHD footer", path);
  }
}

/** `qemu-img convert -f from -O to src dst`, argv only; failures name the file and keep qemu-img's reason. */
export function convertImage(
  qemuImg: string,
  src: string,
  dst: string,
  from: DiskFormat,
  to: DiskFormat,
  signal?: AbortSignal,
): Promise<void> {
  const args = ["convert", "-q", "-f", from, "-O", to, src, dst];
  return new Promise((resolve, reject) => {
    execFile(qemuImg, args, { signal, maxBuffer: 1 << 20 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const reason = String(stderr).trim() || err.message;
      if (signal?.aborted) {
        reject(
          new InterruptedError("Conversion interrupted", { hint: "run the same command again to finish it" }),
        );
      } else if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        reject(fsError(err, "run qemu-img", qemuImg));
      } else if (/No space left on device/i.test(reason)) {
        reject(
          new IoError("Cannot convert the image: no space left on device", {
            detail: `${dst}: ${reason}`,
            hint: `free some space (df -h ${dirname(dst)}), then run the command again`,
          }),
        );
      } else {
        reject(
          new DataError(`qemu-img could not convert ${basename(src)} from ${from} to ${to}`, {
            detail: `${qemuImg} ${args.join(" ")}\n${reason}`,
            hint: `check the catalog entry's transform formats; \`qemu-img info ${src}\` shows what the file is`,
          }),
        );
      }
    });
  });
}
