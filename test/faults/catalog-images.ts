import { copyFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  byoProject,
  fileSize,
  guestCatalog,
  IMAGE_DIR,
  serveGuestImage,
  sha256File,
  writeJson,
} from "./fixtures.js";
import { type CaseContext, errorLine, exitOf, type Scenario } from "./harness.js";
import { qemuPidsOf } from "./proc.js";

type Catalog = Awaited<ReturnType<typeof guestCatalog>>;

/** A host file no guest may ever read: the disk images below refer to it. */
const SECRET_LINE = "HOST-FILE-must-never-reach-a-guest\n";

/** One hostile root disk: how to make it, the transforms that bring it to rootfs.qcow2, and the reference. */
interface HostileDisk {
  label: string;
  make(ctx: CaseContext, secret: string, file: string): Promise<void>;
  transforms: unknown[];
}

const convertTo = (from: string) => [{ type: "qemu_img_convert", from, to: "qcow2", output: "rootfs.qcow2" }];

const DISKS: HostileDisk[] = [
  {
    label: "qcow2 with a backing file on the host",
    make: (ctx, secret, file) =>
      qemuImg(ctx, ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret, file]),
    transforms: [],
  },
  {
    label: "qcow2 with an external data-file on the host",
    make: (ctx, secret, file) =>
      qemuImg(ctx, ["create", "-q", "-f", "qcow2", "-o", `data_file=${secret},data_file_raw=on`, file, "1M"]),
    transforms: [],
  },
  {
    label: "VMDK whose flat extent names a host path (converted to qcow2)",
    make: (_ctx, secret, file) =>
      writeFile(
        file,
        [
          "# Disk DescriptorFile",
          "version=1",
          "CID=fffffffe",
          "parentCID=ffffffff",
          'createType="monolithicFlat"',
          `RW 2048 FLAT "${secret}" 0`,
          "",
        ].join("\n"),
      ),
    transforms: convertTo("vmdk"),
  },
  {
    label: "qcow2 with a backing file on the host, converted to qcow2",
    make: (ctx, secret, file) =>
      qemuImg(ctx, ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret, file]),
    transforms: convertTo("qcow2"),
  },
];

async function qemuImg(ctx: CaseContext, args: string[]): Promise<void> {
  const result = await ctx.exec("qemu-img", args, { cwd: ctx.root });
  if (result.code !== 0) throw new Error(`qemu-img ${args.join(" ")}: ${result.stderr}`);
}

/** The catalog whose root disk is `file` (served by `server` as /hostile.img) with `transforms`. */
async function withRootDisk(catalog: Catalog, file: string, transforms: unknown[], origin: string) {
  const root = catalog.images[0]?.artifacts[0] as Record<string, unknown>;
  root.url = `${origin}/hostile.img`;
  root.sha256 = await sha256File(file);
  root.size = await fileSize(file);
  root.transforms = transforms;
  return catalog;
}

/**
 * Catalog images that refer to other files: each through `castra images pull`, which must refuse it (65)
 * naming the reference and leave no final disk; then a machine type that smuggles a host file into QEMU.
 */
const hostileImages: Scenario = {
  name: "catalog image references",
  timeoutMs: 240_000,
  async run(ctx) {
    const secret = join(ctx.root, "host-secret.raw");
    const writeSecret = () =>
      writeFile(secret, SECRET_LINE.repeat(Math.ceil((1 << 20) / SECRET_LINE.length)).slice(0, 1 << 20));
    await writeSecret();
    const server = await ctx.server();
    await serveGuestImage(server);
    for (const [i, disk] of DISKS.entries()) {
      const file = join(ctx.root, `hostile-${i}.img`);
      await disk.make(ctx, secret, file);
      // Creating a data-file image sizes the data file: the secret is written again afterwards.
      await writeSecret();
      server.serve("/hostile.img", { file });
      const catalog = await withRootDisk(
        await guestCatalog(server.origin),
        file,
        disk.transforms,
        server.origin,
      );
      const project = await ctx.dir(`project-${i}`);
      const env = { CASTRA_CATALOG: await writeJson(join(ctx.root, `catalog-${i}.json`), catalog) };
      const pull = await ctx.castra(["images", "pull"], { cwd: project, env, timeoutMs: 60_000 });
      const finals = await readdir(join(project, IMAGE_DIR)).catch(() => [] as string[]);
      ctx.check(
        `catalog root disk: ${disk.label}`,
        "`images pull` exit 65 naming the referenced file; no rootfs.qcow2",
        `${exitOf(pull)}, rootfs.qcow2 ${finals.includes("rootfs.qcow2") ? "PRESENT" : "absent"}: ${errorLine(pull)}`,
        pull.code === 65 && pull.stderr.includes(secret) && !finals.includes("rootfs.qcow2"),
      );
    }

    const catalog = await guestCatalog(server.origin);
    (catalog.images[0]?.profile as Record<string, unknown>).machine = `q35,initrd=${secret}`;
    const project = await ctx.dir("project-machine");
    const name = `faults-machine-${process.pid}`;
    await writeFile(
      join(project, "castra.toml"),
      `[project]\nname = "${name}"\n\n[[vms]]\nname = "vm"\nmanaged_image = { name = "alpine-minimal", version = "v1" }\n`,
    );
    const env = { CASTRA_CATALOG: await writeJson(join(ctx.root, "catalog-machine.json"), catalog) };
    const up = await ctx.castra(["up", "--no-wait"], { cwd: project, env, timeoutMs: 120_000 });
    const started = (await qemuPidsOf(name)).length;
    if (started > 0) await ctx.castra(["down", "--timeout", "2"], { cwd: project, env, timeoutMs: 60_000 });
    ctx.check(
      "catalog profile.machine `q35,initrd=<host file>`",
      "`up` exit 65 naming profile.machine; no QEMU started",
      `${exitOf(up)}, ${started} QEMU: ${errorLine(up)}`,
      up.code === 65 && /machine/.test(up.stderr) && started === 0,
    );
  },
};

/** A bring-your-own base that is itself a qcow2 on top of the user's own base keeps working. */
const ownBackingChain: Scenario = {
  name: "own backing chain",
  timeoutMs: 200_000,
  async run(ctx) {
    const dir = await ctx.dir("project");
    const name = `faults-chain-${process.pid}`;
    await byoProject(dir, { name, baseImage: "layer.qcow2" });
    await copyFile(join(dir, "layer.qcow2"), join(dir, "bottom.qcow2"));
    await qemuImg(ctx, [
      "create",
      "-q",
      "-f",
      "qcow2",
      "-F",
      "qcow2",
      "-b",
      join(dir, "bottom.qcow2"),
      join(dir, "layer.qcow2"),
    ]);
    const castra = (args: string[]) => ctx.castra(args, { cwd: dir, timeoutMs: 150_000 });
    const up = await castra(["up"]);
    const down = await castra(["down", "--timeout", "30"]);
    ctx.check(
      "bring-your-own base_image that is a qcow2 on the user's own base",
      "`up` exit 0 (boots), `down` exit 0",
      `up ${exitOf(up)}, down ${exitOf(down)}${up.code === 0 ? "" : `: ${errorLine(up)}`}`,
      up.code === 0 && down.code === 0,
    );
  },
};

export const catalogImageScenarios: Scenario[] = [hostileImages, ownBackingChain];
