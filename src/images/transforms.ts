import { execFile } from "node:child_process";
import { open, rm, truncate } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { DataError, fsError, InterruptedError, IoError, ToolMissingError } from "../errors.js";
import { findOnPath, QEMU_IMG } from "../host/tools.js";
import type { Artifact, DiskFormat, Transform } from "./catalog.js";
import { unshareFile } from "./file-placement.js";

const FOOTER_BYTES = 512;
const VHD_COOKIE = "conectix";
const VHD_FIXED = 2;

/** What one finished step did, for the `transform` event. */
export interface TransformStep {
  name: Transform["type"];
  from: string;
  to: string;
}

export function needsQemuImg(artifacts: readonly Artifact[]): boolean {
  return artifacts.some((a) => a.transforms.some((t) => t.type === "qemu_img_convert"));
}

/** qemu-img's absolute path, or ToolMissingError (exit 72) with install lines, before anything is downloaded. */
export async function requireQemuImg(env: NodeJS.ProcessEnv, image: string): Promise<string> {
  const found = await findOnPath(QEMU_IMG, env.PATH);
  if (found) return found;
  throw new ToolMissingError("qemu-img is not installed", {
    detail: [
      `The managed image ${image} is converted with qemu-img, which is not on PATH. Install it with:`,
      "  Debian/Ubuntu: sudo apt-get install qemu-utils",
      "  Fedora:        sudo dnf install qemu-img",
      "  macOS:         brew install qemu",
    ].join("\n"),
    hint: "install qemu-img as shown above, check it with `qemu-img --version`, then run the command again",
  });
}

/** Where a step writes before the final rename: `*.partial`, the one suffix a failure may leave behind. */
export function transformTempName(output: string): string {
  return `${output}.tmp.partial`;
}

/**
 * Runs the artifact's transforms on `input` (the verified download) and returns the path of the result,
 * still on a temporary name in the same directory. Intermediate files are removed; on failure every file
 * this call created is removed and `input` is left where it was.
 */
export async function applyTransforms(
  input: string,
  artifact: Artifact,
  options: { qemuImg?: string; signal?: AbortSignal; onStep?: (step: TransformStep) => void },
): Promise<string> {
  const dir = dirname(input);
  let current = input;
  let currentName = basename(input);
  const created: string[] = [];
  try {
    for (const t of artifact.transforms) {
      if (t.type === "strip_vhd_footer") {
        // Stripping is a truncation, so the file stays a valid prefix of the download: resumable if we fail later.
        await stripVhdFooter(current);
        options.onStep?.({ name: t.type, from: "vhd", to: "raw" });
      } else if (t.type === "qemu_img_convert") {
        const out = join(dir, transformTempName(t.output));
        created.push(out);
        await convertImage(options.qemuImg ?? QEMU_IMG, current, out, t.from, t.to, options.signal);
        if (current !== input) await rm(current, { force: true });
        current = out;
        options.onStep?.({ name: t.type, from: t.from, to: t.to });
      } else {
        options.onStep?.({ name: t.type, from: currentName, to: t.output });
      }
      if ("output" in t) currentName = t.output;
    }
    return current;
  } catch (err) {
    await Promise.all(created.map((f) => rm(f, { force: true })));
    throw err;
  }
}

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
