import { basename } from "node:path";
import { DataError, fsError, LockTimeoutError } from "../../errors.js";
import { formatBytes } from "../../host/bytes.js";
import { acquireLock, type Lock } from "../../host/lock.js";
import { loadCatalog } from "../../images/catalog.js";
import { DownloadStore, type StoredBlob } from "../../images/download-store.js";
import { blobProblem, catalogReferences, lastUsed, pruneCandidates } from "../../images/store-inventory.js";
import { confirmDeletion } from "../confirm.js";
import type { CommandContext } from "../context.js";
import type { IO } from "../io.js";
import { formatTable } from "../render/table.js";
import { formatDate, plural } from "../render/text.js";

/** The download cache and its blobs; undefined (said once) when it is off or empty. */
async function openStore(io: IO): Promise<{ store: DownloadStore; blobs: StoredBlob[] } | undefined> {
  const store = DownloadStore.fromEnv(io.env);
  if (!store) {
    io.info("The download cache is off (CASTRA_CACHE_DIR=off).");
    return undefined;
  }
  const blobs = await store.list().catch((err) => {
    throw fsError(err, "read the download cache", store.blobsDir);
  });
  if (blobs.length === 0) {
    io.info(`The download cache ${store.root} is empty: \`castra images pull\` fills it.`);
    return undefined;
  }
  return { store, blobs };
}

const short = (sha256: string) => sha256.slice(0, 12);
const totalSize = (blobs: StoredBlob[]) => blobs.reduce((sum, b) => sum + b.size, 0);

/** `castra images list --cache`: every blob with its size, last use, the catalog images using it and its URL. */
export async function runCacheList(ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const opened = await openStore(io);
  if (!opened) return 0;
  const { store, blobs } = opened;
  const refs = catalogReferences(await loadCatalog(io.env));
  const rows = blobs.map((blob) => [
    short(blob.sha256),
    formatBytes(blob.size),
    formatDate(lastUsed(blob)),
    refs.get(blob.sha256)?.join(", ") ?? "-",
    blob.record?.url ?? "-",
  ]);
  for (const line of formatTable(["SHA256", "SIZE", "LAST USED", "CATALOG", "URL"], rows)) io.print(line);
  io.print(`Total: ${formatBytes(totalSize(blobs))} in ${plural(blobs.length, "blob")} (${store.root})`);
  return 0;
}

/** `castra images verify --cache`: re-hashes every blob against its name; 65 naming each damaged one. */
export async function runCacheVerify(ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const opened = await openStore(io);
  if (!opened) return 0;
  const bad: { path: string; problem: string }[] = [];
  for (const blob of opened.blobs) {
    // A damaged blob is harmless (every use re-hashes what it takes), so verify reports and removes nothing.
    const problem = await blobProblem(blob);
    if (problem) bad.push({ path: blob.path, problem });
    io.print(problem ? `DAMAGED  ${blob.path}: ${problem}` : `ok       ${blob.path}`);
  }
  if (bad.length === 0) return 0;
  throw new DataError(
    bad.length === 1 ? `${bad[0]?.path} is damaged` : `${bad.length} blobs in the download cache are damaged`,
    {
      detail: bad.map((b) => `${b.path}: ${b.problem}`).join("\n"),
      hint: `remove them (rm -f ${bad.map((b) => b.path).join(" ")}); the next pull that needs one downloads it again`,
    },
  );
}

export interface CachePruneOptions {
  yes?: boolean;
  olderThan?: number;
}

/** `castra images prune --cache [--older-than DAYS]`: removes blobs no catalog entry uses (or long unused). */
export async function runCachePrune(opts: CachePruneOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const opened = await openStore(io);
  if (!opened) return 0;
  const { store, blobs } = opened;
  const doomed = pruneCandidates(blobs, await loadCatalog(io.env), opts.olderThan);
  if (doomed.length === 0) {
    const recently = opts.olderThan === undefined ? "" : ` and was used in the last ${opts.olderThan} days`;
    io.info(`Nothing to prune: every blob in the download cache is in the catalog${recently}.`);
    return 0;
  }
  for (const { blob, why } of doomed) {
    io.info(`unused: ${short(blob.sha256)} ${formatBytes(blob.size)} ${blob.record?.url ?? ""} (${why})`);
  }
  const size = formatBytes(totalSize(doomed.map((d) => d.blob)));
  const question = `Remove ${plural(doomed.length, "blob")} (${size}) from ${store.root}? [y/N] `;
  const command = `castra images prune --cache${opts.olderThan === undefined ? "" : ` --older-than ${opts.olderThan}`}`;
  if (!(await confirmDeletion(io, { yes: opts.yes, question, command, what: "blobs" }))) {
    io.info("Nothing removed.");
    return 0;
  }
  let freed = 0;
  let removed = 0;
  let linked = 0;
  for (const { blob } of doomed) {
    const lock = await lockUnlessBusy(store, blob.sha256, io);
    if (!lock) continue;
    try {
      const { freed: released, shared } = await store.remove(blob.sha256).catch((err) => {
        throw fsError(err, "remove a blob from the download cache", blob.path);
      });
      freed += released;
      removed += 1;
      if (shared) linked += 1;
    } finally {
      await lock.release();
    }
  }
  freed += await removeLeftovers(store, io);
  io.success(`Freed ${formatBytes(freed)} (${plural(removed, "blob")})`);
  if (linked > 0) {
    io.info(
      `${plural(linked, "blob")} removed from the cache ${linked === 1 ? "is" : "are"} still hard-linked from project images: ` +
        "the space comes back when those projects prune them",
    );
  }
  return 0;
}

/** The blob's lock, or undefined (said) when a live castra is using the blob right now. */
async function lockUnlessBusy(store: DownloadStore, sha256: string, io: IO): Promise<Lock | undefined> {
  try {
    return await acquireLock(store.lockPath(sha256), {
      purpose: "castra images prune --cache",
      timeoutMs: 0,
    });
  } catch (err) {
    if (!(err instanceof LockTimeoutError)) throw err;
    io.info(`kept ${short(sha256)}: another castra is using it right now`);
    return undefined;
  }
}

/** Temporary files of a publish a crash interrupted, and records without a blob; returns the bytes freed. */
async function removeLeftovers(store: DownloadStore, io: IO): Promise<number> {
  let freed = 0;
  for (const leftover of await store.leftovers()) {
    const lock = await lockUnlessBusy(store, basename(leftover.path).slice(0, 64), io);
    if (!lock) continue;
    try {
      freed += await store.removeLeftover(leftover.path);
    } finally {
      await lock.release();
    }
  }
  return freed;
}
