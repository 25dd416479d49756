import { chmod, chown, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ImageProject, imageProject, pullImage, verified } from "./downloads.js";
import { IMAGE_DIR, testGuest } from "./fixtures.js";
import { type CaseContext, errorLine, exitOf, type RunResult, type Scenario } from "./harness.js";

/** `nobody` on Debian and most distributions: the "other user" who planted or owns a file. */
const OTHER_UID = 65534;

/** The same catalog and server as `p`, in a fresh project directory. */
async function anotherProject(ctx: CaseContext, p: ImageProject, name: string): Promise<ImageProject> {
  const project = await ctx.dir(name);
  return { ...p, project, imageDir: join(project, IMAGE_DIR) };
}

async function chownTree(path: string, uid: number): Promise<void> {
  await chown(path, uid, uid);
  const info = await stat(path);
  if (!info.isDirectory()) return;
  for (const name of await readdir(path)) await chownTree(join(path, name), uid);
}

/** How a pull used the download cache: hits, network GETs, and whether it warned that the cache is unusable. */
function cacheUse(result: RunResult, gets: number): string {
  const hits = result.stderr.match(/Found in the download cache/g)?.length ?? 0;
  const warnings = result.stderr.match(/download cache .* is not usable/g)?.length ?? 0;
  return `${exitOf(result)}, ${hits} cache hits, ${gets} GETs, ${warnings} warning${warnings === 1 ? "" : "s"}`;
}

/**
 * Issue 14, item 6: a download cache that another user owns or may write is not trusted; its temporary files
 * never follow a planted link; a blob another user owns is never hard-linked into a project.
 */
const untrustedStore: Scenario = {
  name: "untrusted download cache",
  timeoutMs: 150_000,
  async run(ctx) {
    const p = await imageProject(ctx);
    const store = join(ctx.root, "user-cache");
    const blobs = join(store, "downloads", "sha256");
    const seeded = await pullImage(ctx, p);
    if (seeded.code !== 0) throw new Error(`seeding the download cache failed: ${errorLine(seeded)}`);
    const me = process.getuid?.() ?? 0;
    let n = 0;
    const pull = async () => {
      const q = await anotherProject(ctx, p, `project-${++n}`);
      p.server.requests.length = 0;
      const result = await pullImage(ctx, q);
      return { q, result, gets: p.server.gets().length, use: cacheUse(result, p.server.gets().length) };
    };
    const refused = (r: Awaited<ReturnType<typeof pull>>) =>
      r.result.code === 0 && r.use.endsWith("0 cache hits, 3 GETs, 1 warning");

    await chownTree(store, OTHER_UID);
    const foreign = await pull();
    await chownTree(store, me);
    ctx.check(
      "download cache owned by another user",
      "exit 0, one warning, nothing taken from the cache: every artifact downloaded",
      foreign.use,
      refused(foreign),
    );

    for (const [label, dir, mode] of [
      ["download cache writable by its group (0770)", store, 0o770],
      ["download cache subdirectory writable by everyone (downloads/sha256 0777)", blobs, 0o777],
    ] as const) {
      await chmod(dir, mode);
      const loose = await pull();
      await chmod(dir, 0o700);
      ctx.check(label, "exit 0, one warning, nothing taken from the cache", loose.use, refused(loose));
    }

    const kernelSha = (await testGuest()).sha256.vmlinuz as string;
    const victim = join(ctx.root, "victim.txt");
    await writeFile(victim, "precious\n");
    await symlink(victim, join(blobs, `${kernelSha}.json.tmp`));
    const linked = await pull();
    const intact = (await readFile(victim, "utf8")) === "precious\n";
    ctx.check(
      "planted link at the cache's <sha256>.json.tmp",
      "exit 0 from the cache; the link's target is not written",
      `${linked.use}; target ${intact ? "intact" : "OVERWRITTEN"}`,
      linked.result.code === 0 && intact,
    );

    const kernelBlob = join(blobs, kernelSha);
    await chown(kernelBlob, OTHER_UID, OTHER_UID);
    await chmod(kernelBlob, 0o666);
    const planted = await pull();
    const placed = await stat(join(planted.q.imageDir, "vmlinuz")).catch(() => undefined);
    const shared = placed?.ino === (await stat(kernelBlob)).ino;
    const ok = planted.result.code === 0 && (await verified(ctx, planted.q));
    ctx.check(
      "cache blob owned by another user and writable by all (0666)",
      "exit 0, verified; the project's file is a copy, never a hard link to that blob",
      `${planted.use}; vmlinuz ${placed ? (shared ? "IS the blob (hard link)" : "a copy") : "missing"}, verify ${ok ? "ok" : "FAILED"}`,
      ok && placed !== undefined && !shared,
    );
  },
};

export const downloadTrustScenarios: Scenario[] = [untrustedStore];
