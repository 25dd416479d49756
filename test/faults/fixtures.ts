import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildTestGuest, type TestGuest } from "../support/guest.js";
import { guestCatalog as catalogOf } from "../support/guest-catalog.js";
import type { FixtureServer } from "../support/http-server.js";

export const IMAGE = "alpine-minimal@v1";
/** The managed image's directory inside a project. */
export const IMAGE_DIR = join(".castra", "images", "alpine-minimal", "v1");
export const GUEST_APPEND = "console=ttyS0 quiet castra.disk=1";

let guest: Promise<TestGuest> | undefined;

/** The test guest (built once per run; cached on disk between runs). */
export function testGuest(): Promise<TestGuest> {
  guest ??= buildTestGuest();
  return guest;
}

/** What the test catalog serves, by URL path. */
export interface ServedImage {
  vhd: string;
  kernel: string;
  initrd: string;
  /** Sum of the three downloads, in bytes. */
  totalBytes: number;
}

/** Serves the guest's rootfs.vhd, kernel and initramfs from `server`. */
export async function serveGuestImage(server: FixtureServer): Promise<ServedImage> {
  const g = await testGuest();
  server.serve("/rootfs.vhd", { file: g.vhd });
  server.serve("/vmlinuz", { file: g.kernel });
  server.serve("/initramfs.cpio.gz", { file: g.initrd });
  const totalBytes = ["rootfs.vhd", "vmlinuz", "initramfs.cpio.gz"].reduce((n, f) => n + (g.size[f] ?? 0), 0);
  return { vhd: "/rootfs.vhd", kernel: "/vmlinuz", initrd: "/initramfs.cpio.gz", totalBytes };
}

/** The `CASTRA_CATALOG` document whose alpine-minimal@v1 is the test guest served from `origin`. */
export async function guestCatalog(origin: string) {
  return catalogOf(await testGuest(), { urlOf: (name) => `${origin}/${name}`, append: GUEST_APPEND });
}

export async function writeJson(path: string, value: unknown): Promise<string> {
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
  return path;
}

export interface ByoProject {
  name: string;
  /** Base image path as written in castra.toml (relative to the project). */
  baseImage?: string;
  /** Extra TOML appended to the VM table (forwards, ready_pattern...). */
  vmExtra?: string;
  /** Extra TOML after the VM (e.g. a [broker] table). */
  tail?: string;
  readyPattern?: string;
}

/** A project whose one VM `devbox` boots the BIOS test disk (copied in as base.qcow2) as a bring-your-own image. */
export async function byoProject(dir: string, p: ByoProject): Promise<string> {
  const base = p.baseImage ?? "base.qcow2";
  await copyFile((await testGuest()).biosDisk, join(dir, base));
  const toml = [
    `version = "0.1.0"`,
    `[project]\nname = ${JSON.stringify(p.name)}`,
    [
      `[[vms]]`,
      `name = "devbox"`,
      `base_image = ${JSON.stringify(base)}`,
      `cpus = 1`,
      `memory = "256 MiB"`,
      `ready_pattern = ${JSON.stringify(p.readyPattern ?? "login:")}`,
      p.vmExtra ?? "",
    ].join("\n"),
    p.tail ?? "",
  ].join("\n\n");
  await writeFile(join(dir, "castra.toml"), `${toml}\n`);
  return dir;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** sha256 plus mtime and inode: "untouched" means all three are the same afterwards. */
export async function fingerprint(path: string): Promise<string> {
  const info = await stat(path);
  return `${await sha256File(path)} ${info.mtimeMs} ${info.ino}`;
}

/** `qemu-img compare` of the guest's raw disk with a converted qcow2: true when the guest data is identical. */
export async function sameDiskAsGuest(qcow2: string): Promise<boolean> {
  const raw = (await testGuest()).dataDiskRaw;
  return new Promise((resolve) => {
    execFile("qemu-img", ["compare", "-q", "-f", "raw", "-F", "qcow2", raw, qcow2], (err) => resolve(!err));
  });
}

export async function fileSize(path: string): Promise<number | undefined> {
  return stat(path).then(
    (s) => s.size,
    () => undefined,
  );
}
