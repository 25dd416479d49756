import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
/** Where build-guest.sh puts the BIOS disk's FAT boot partition (syslinux, kernel, initrd). */
const BOOT_PARTITION_OFFSET = "1M";

/**
 * A copy of the test guest's BIOS disk (`TestGuest.biosDisk`) at `out` (qcow2) whose syslinux APPEND line
 * is `console=ttyS0 quiet <words>`: the guest's kernel-command-line modes for a bring-your-own VM, which
 * boots from its own bootloader and cannot be given -append. Uses qemu-img and mtools, no root.
 */
export async function biosDiskWithAppend(biosDisk: string, words: string, out: string): Promise<void> {
  const work = await mkdtemp(join(dirname(out), ".bios-disk-"));
  try {
    const raw = join(work, "disk.raw");
    const image = `${raw}@@${BOOT_PARTITION_OFFSET}`;
    await run("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", biosDisk, raw]);
    const { stdout: config } = await run("mtype", ["-i", image, "::syslinux.cfg"]);
    if (!/^\s*APPEND /m.test(config))
      throw new Error(`no APPEND line in the BIOS disk's syslinux.cfg:\n${config}`);
    const cfg = join(work, "syslinux.cfg");
    await writeFile(cfg, config.replace(/^(\s*)APPEND .*$/m, `$1APPEND console=ttyS0 quiet ${words}`));
    await run("mcopy", ["-o", "-i", image, cfg, "::syslinux.cfg"]);
    await run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, out]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
