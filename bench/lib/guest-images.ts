import { rm } from "node:fs/promises";
import { join } from "node:path";
import { buildTestGuest, type TestGuest } from "../../test/support/guest.js";
import type { Bench } from "./castra.js";
import { facts, GUEST_PROFILE, makeQcow2, writeCatalog, writeDiskFile } from "./fixtures.js";

const GIB = 1024 ** 3;

let guest: Promise<TestGuest> | undefined;
let small: Promise<string> | undefined;

/** The project's test guest (kernel, initramfs, 64 MiB ext4 disk), built once from Debian packages. */
export function testGuest(): Promise<TestGuest> {
  guest ??= buildTestGuest();
  return guest;
}

/**
 * A CASTRA_CATALOG whose alpine-minimal@v1 is the test guest (direct kernel boot, ready at `login:`) with
 * the given qcow2 as its root disk, fetched from file: URLs, so an empty directory's `castra up` boots it.
 */
async function guestCatalog(
  bench: Bench,
  name: string,
  rootQcow2: string,
  profile: Record<string, unknown> = GUEST_PROFILE,
): Promise<string> {
  const g = await testGuest();
  return writeCatalog(
    join(bench.work, `${name}.catalog.json`),
    "alpine-minimal",
    [
      { kind: "root_disk", file: await facts(rootQcow2), final_name: "rootfs.qcow2" },
      { kind: "kernel", file: await facts(g.kernel), final_name: "vmlinuz" },
      { kind: "initrd", file: await facts(g.initrd), final_name: "initramfs.cpio.gz" },
    ],
    profile,
  );
}

/** The catalog of the guest with its own 64 MiB root disk (as qcow2). */
export function smallGuestCatalog(bench: Bench): Promise<string> {
  small ??= (async () => {
    const qcow2 = join(bench.work, "root-64m.qcow2");
    await makeQcow2((await testGuest()).dataDiskRaw, qcow2);
    return guestCatalog(bench, "guest-64m", qcow2);
  })();
  return small;
}

/**
 * The small guest as a cloud image: it asks castra's metadata service for its keys and runs an SSH server for
 * `alpine` (doas to root), its host key kept on its disk; castra logs in, mounts and provisions it.
 */
export async function sshGuestCatalog(bench: Bench): Promise<string> {
  const qcow2 = join(bench.work, "root-64m-ssh.qcow2");
  await makeQcow2((await testGuest()).dataDiskRaw, qcow2);
  return guestCatalog(bench, "guest-ssh", qcow2, {
    ...GUEST_PROFILE,
    append: `${GUEST_PROFILE.append} castra.disk=1 castra.ssh=1 castra.mdtimeout=5`,
    metadata: "ec2",
    login_user: "alpine",
  });
}

/** The same guest with a 1 GiB root disk full of incompressible data (a 1 GiB qcow2 file). */
export async function largeGuestCatalog(bench: Bench): Promise<string> {
  const raw = join(bench.work, "root-1g.raw");
  const qcow2 = join(bench.work, "root-1g.qcow2");
  await writeDiskFile(raw, GIB);
  await makeQcow2(raw, qcow2);
  await rm(raw);
  return guestCatalog(bench, "guest-1g", qcow2);
}
