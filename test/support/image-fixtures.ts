import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FixtureServer } from "./http-server.js";

/** Deterministic pseudo-random bytes (xorshift32), so fixtures are the same on every run. */
export function seededBytes(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    for (let b = 0; b < 4 && i + b < length; b++) out[i + b] = (x >>> (b * 8)) & 0xff;
  }
  return out;
}

export interface FixtureFile {
  path: string;
  name: string;
  sha256: string;
  size: number;
}

/** A small managed image: a fixed VHD (seeded raw data + footer), a kernel and an initrd. */
export interface ImageFixture {
  /** The raw disk the VHD was made from: what the converted qcow2 must hold. */
  raw: string;
  vhd: FixtureFile;
  kernel: FixtureFile;
  initrd: FixtureFile;
}

function describe(path: string, name: string): FixtureFile {
  const data = readFileSync(path);
  return { path, name, sha256: createHash("sha256").update(data).digest("hex"), size: data.length };
}

/** Builds the fixture in `dir` with `qemu-img convert -O vpc -o subformat=fixed,force_size=on`. */
export function buildImageFixture(dir: string, diskMiB = 4): ImageFixture {
  const raw = join(dir, "disk.raw");
  const half = (diskMiB * 1024 * 1024) / 2;
  // Random data, then zeros, as a real disk has: the qcow2 keeps the first half only.
  writeFileSync(raw, Buffer.concat([seededBytes(half, 42), Buffer.alloc(half)]));
  const vhd = join(dir, "disk.vhd");
  makeVhd(raw, vhd, "fixed");
  writeFileSync(join(dir, "vmlinuz-test"), seededBytes(300_000, 7));
  writeFileSync(join(dir, "initramfs-test"), seededBytes(200_000, 9));
  return {
    raw,
    vhd: describe(vhd, "disk.vhd"),
    kernel: describe(join(dir, "vmlinuz-test"), "vmlinuz-test"),
    initrd: describe(join(dir, "initramfs-test"), "initramfs-test"),
  };
}

/** `qemu-img convert -O vpc`: a fixed VHD is the raw disk plus a 512-byte footer; a dynamic one is not. */
export function makeVhd(raw: string, vhd: string, subformat: "fixed" | "dynamic"): void {
  const options = subformat === "fixed" ? "subformat=fixed,force_size=on" : "subformat=dynamic";
  execFileSync("qemu-img", ["convert", "-q", "-f", "raw", "-O", "vpc", "-o", options, raw, vhd]);
}

/** Fails (qemu-img compare exits non-zero) unless the qcow2 holds exactly the raw disk's bytes. */
export function assertSameDisk(raw: string, qcow2: string): void {
  execFileSync("qemu-img", ["compare", "-q", "-f", "raw", "-F", "qcow2", raw, qcow2]);
}

/**
 * A CASTRA_CATALOG document whose `alpine-minimal@v1` is the fixture served from `baseUrl`:
 * root disk through strip_vhd_footer and qemu_img_convert, kernel and initrd as downloaded.
 */
export function fixtureCatalog(
  fixture: ImageFixture,
  baseUrl: string,
  id = "alpine-minimal",
  version = "v1",
) {
  return {
    images: [
      {
        id,
        version,
        artifacts: [
          {
            kind: "root_disk",
            url: `${baseUrl}/${fixture.vhd.name}`,
            sha256: fixture.vhd.sha256,
            size: fixture.vhd.size,
            final_name: "rootfs.qcow2",
            transforms: [
              { type: "strip_vhd_footer" },
              { type: "qemu_img_convert", from: "raw", to: "qcow2", output: "rootfs.qcow2" },
            ],
          },
          {
            kind: "kernel",
            url: `${baseUrl}/${fixture.kernel.name}`,
            sha256: fixture.kernel.sha256,
            size: fixture.kernel.size,
            final_name: "vmlinuz",
            transforms: [],
          },
          {
            kind: "initrd",
            url: `${baseUrl}/${fixture.initrd.name}`,
            sha256: fixture.initrd.sha256,
            size: fixture.initrd.size,
            final_name: "initrd.img",
            transforms: [{ type: "rename", output: "initrd.img" }],
          },
        ],
        profile: {
          kernel: "kernel",
          initrd: "initrd",
          append: "console=ttyS0",
          cpus: 1,
          memory: "256 MiB",
          disk_interface: "virtio",
          ready_pattern: "login:",
        },
      },
    ],
  };
}

export function writeJson(path: string, value: unknown): string {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
  return path;
}

/** The fixture built in a fresh temp directory and served from a local server on 127.0.0.1. */
export async function serveImageFixture(
  prefix: string,
): Promise<{ dir: string; fixture: ImageFixture; server: FixtureServer }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const fixture = buildImageFixture(dir);
  const server = await FixtureServer.start();
  for (const f of [fixture.vhd, fixture.kernel, fixture.initrd]) server.serve(`/${f.name}`, { file: f.path });
  return { dir, fixture, server };
}
