import { dirname, join } from "node:path";
import { displayPath } from "../../config/load.js";
import type { Project } from "../../config/model.js";
import { DataError, UsageError } from "../../errors.js";
import { formatBytes } from "../../host/bytes.js";
import { narrowModes } from "../../host/private-files.js";
import {
  type CachedImage,
  listCachedImages,
  lockCachedImage,
  removeCachedImage,
  verifyCachedImage,
} from "../../images/cache.js";
import { loadCatalog, parseImageRef } from "../../images/catalog.js";
import { ensureImage, type ImageSpec } from "../../images/ensure-image.js";
import { MANIFEST_FILE } from "../../images/manifest.js";
import { confirmDeletion } from "../confirm.js";
import type { CommandContext } from "../context.js";
import { resolveProject } from "../project.js";
import { renderImageEvents } from "../render/image-events.js";
import { narrowedNotice } from "../render/modes.js";
import { formatTable } from "../render/table.js";
import { formatDate, plural } from "../render/text.js";
import { runCacheList, runCachePrune, runCacheVerify } from "./images-cache.js";
import type { CacheOptions, PruneOptions, PullOptions } from "./specs.js";

/** The managed images the project's VMs use, each once. */
function usedImages(project: Project): ImageSpec[] {
  const seen = new Map<string, ImageSpec>();
  for (const vm of project.vms) {
    if (vm.source.kind === "managed") seen.set(`${vm.source.name}@${vm.source.version}`, vm.source);
  }
  return [...seen.values()].map(({ name, version }) => ({ name, version }));
}

function usersOf(project: Project, image: CachedImage): string[] {
  return project.vms
    .filter(
      (vm) =>
        vm.source.kind === "managed" && vm.source.name === image.id && vm.source.version === image.version,
    )
    .map((vm) => vm.name);
}

/** `castra images pull [ID@VERSION]`: materialise images without booting anything. */
export async function runImagesPull(opts: PullOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const project = await resolveProject(ctx);
  const specs = opts.image ? [parseImageRef(opts.image, await loadCatalog(io.env))] : usedImages(project);
  if (specs.length === 0) {
    io.info(
      "This project uses no managed image: every VM brings its own base_image. Name one: castra images pull ID@VERSION",
    );
    return 0;
  }
  // As `up` does: what others could read below .castra/ becomes the user's alone first, said in one line.
  const narrowed = await narrowModes(project.stateDir);
  if (narrowed.length > 0) io.info(narrowedNotice(project.stateDir, narrowed, io.cwd));
  const onEvent = renderImageEvents(io);
  for (const spec of specs) {
    await ensureImage(spec, {
      stateDir: project.stateDir,
      env: io.env,
      offline: opts.offline,
      signal: ctx.signal,
      onEvent,
    });
  }
  return 0;
}

/** The project and what its image cache holds; an empty cache is said once, for every subcommand. */
async function projectCache(ctx: CommandContext): Promise<{ project: Project; images: CachedImage[] }> {
  const project = await resolveProject(ctx);
  const images = await listCachedImages(project.stateDir);
  if (images.length === 0) {
    ctx.io.info("No managed images cached. `castra images pull` downloads the ones this project uses.");
  }
  return { project, images };
}

/** `castra images list`: what the project's image cache holds, with sizes and dates. */
export async function runImagesList(opts: CacheOptions, ctx: CommandContext): Promise<number> {
  if (opts.cache) return runCacheList(ctx);
  const { io } = ctx;
  const { project, images } = await projectCache(ctx);
  if (images.length === 0) return 0;
  const rows: string[][] = [];
  for (const image of images) {
    const users = usersOf(project, image).join(",") || "-";
    const state = image.manifest ? "" : " (incomplete)";
    // The manifest is bookkeeping: its bytes count in the total, its row would only be noise.
    image.files
      .filter((file) => file.name !== MANIFEST_FILE)
      .forEach((file, i) => {
        const label = i === 0 ? `${image.name}${state}` : "";
        rows.push([
          label,
          file.name,
          formatBytes(file.size),
          formatDate(file.modified),
          i === 0 ? users : "",
        ]);
      });
  }
  for (const line of formatTable(["IMAGE", "FILE", "SIZE", "DATE", "USED BY"], rows)) io.print(line);
  const total = images.reduce((sum, image) => sum + image.totalBytes, 0);
  io.print(`Total: ${formatBytes(total)} in ${plural(images.length, "image")}`);
  return 0;
}

/** `castra images verify`: re-hashes every final file against its manifest; 65 naming each file that differs. */
export async function runImagesVerify(opts: CacheOptions, ctx: CommandContext): Promise<number> {
  if (opts.cache) return runCacheVerify(ctx);
  const { io } = ctx;
  const { images } = await projectCache(ctx);
  const bad: { path: string; problem: string }[] = [];
  for (const image of images) {
    const { manifest } = image;
    if (!manifest) {
      // A download that was interrupted or failed: not damage, just unfinished.
      io.print(`incomplete ${image.name}: no manifest yet; \`castra images pull ${image.name}\` finishes it`);
      continue;
    }
    const lock = await lockCachedImage(image, { signal: ctx.signal });
    try {
      for (const finding of await verifyCachedImage({ ...image, manifest })) {
        const where = `${image.name} ${finding.file}`;
        if (finding.ok) io.print(`ok        ${where}`);
        else {
          io.print(`MISMATCH  ${where}: ${finding.problem}`);
          bad.push({ path: join(image.dir, finding.file), problem: finding.problem ?? "" });
        }
      }
    } finally {
      await lock.release();
    }
  }
  if (bad.length === 0) return 0;
  const headline =
    bad.length === 1
      ? `${bad[0]?.path} does not match its manifest`
      : `${bad.length} cached files do not match their manifests`;
  const dirs = [...new Set(bad.map((b) => displayPath(dirname(b.path), io.cwd)))];
  throw new DataError(headline, {
    detail: bad.map((b) => `${b.path}: ${b.problem}`).join("\n"),
    hint: `remove the damaged image (rm -rf ${dirs.join(" ")}), then run \`castra images pull\``,
  });
}

/** `castra images prune`: removes cached versions no VM of the project uses, after a confirmation. */
export async function runImagesPrune(opts: PruneOptions, ctx: CommandContext): Promise<number> {
  if (opts.cache) return runCachePrune(opts, ctx);
  if (opts.olderThan !== undefined) {
    throw new UsageError("--older-than applies to the download cache only", {
      hint: `run \`castra images prune --cache --older-than ${opts.olderThan}\``,
    });
  }
  const { io } = ctx;
  const { project, images } = await projectCache(ctx);
  const unused = images.filter((image) => usersOf(project, image).length === 0);
  if (unused.length === 0) {
    if (images.length > 0) io.info("Nothing to prune: every cached image is in use.");
    return 0;
  }
  const total = unused.reduce((sum, image) => sum + image.totalBytes, 0);
  for (const image of unused) io.info(`unused: ${image.name} (${formatBytes(image.totalBytes)})`);
  const question = `Remove ${plural(unused.length, "image")} and free ${formatBytes(total)}? [y/N] `;
  const command = "castra images prune";
  if (!(await confirmDeletion(io, { yes: opts.yes, question, command, what: "images" }))) {
    io.info("Nothing removed.");
    return 0;
  }
  let freed = 0;
  for (const image of unused) {
    const lock = await lockCachedImage(image, { signal: ctx.signal });
    try {
      freed += await removeCachedImage(image);
    } finally {
      await lock.release();
    }
    io.info(`removed ${image.name}`);
  }
  io.success(`Removed ${plural(unused.length, "image")}, freed ${formatBytes(freed)}`);
  return 0;
}
