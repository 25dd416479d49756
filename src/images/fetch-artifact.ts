import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { UnavailableError } from "../errors.js";
import { formatBytes } from "../host/bytes.js";
import { describeKind, downloadUrl, imageName } from "./catalog.js";
import type { Artifact, CatalogEntry } from "./catalog-schema.js";
import { download } from "./download.js";
import type { DownloadStore } from "./download-store.js";
import type { ImageEvent } from "./events.js";
import { proxyFor } from "./proxy-env.js";
import { redactUrl } from "./redact-url.js";
import type { StoreSession } from "./store-session.js";

export interface FetchOptions {
  env: NodeJS.ProcessEnv;
  offline: boolean;
  signal?: AbortSignal;
  stallTimeoutMs: number;
  minBytesPerSecond: number;
  emit: (event: ImageEvent) => void;
  /** The per-user download cache; absent when CASTRA_CACHE_DIR=off. */
  store?: StoreSession;
}

/** A verified download waiting for its transforms. */
export interface Fetched {
  artifact: Artifact;
  url: string;
  partial: string;
}

/** The download of an artifact in progress: `<final_name>.partial`. */
export function partialPath(dir: string, artifact: Artifact): string {
  return join(dir, `${artifact.final_name}.partial`);
}

/**
 * Brings an artifact's verified bytes to `<final_name>.partial` in the image directory: from the download
 * cache when it holds them, else from the network, then into the cache for the next project. The cache's
 * lock is held throughout, so a second project fetching the same bytes waits and then finds them there.
 */
export async function fetchArtifact(
  entry: CatalogEntry,
  artifact: Artifact,
  dir: string,
  options: FetchOptions,
): Promise<Fetched> {
  const url = downloadUrl(artifact, options.env);
  const partial = partialPath(dir, artifact);
  const use = { image: imageName(entry), artifact: artifact.kind };
  const fromNetwork = async () => {
    await forgetSharedPartial(partial);
    if (options.offline) await requireLocalSources(dir, entry, [artifact], options.env);
    await download({
      url,
      dest: partial,
      size: artifact.size,
      sha256: artifact.sha256,
      signal: options.signal,
      stallTimeoutMs: options.stallTimeoutMs,
      minBytesPerSecond: options.minBytesPerSecond,
      proxy: (target) => proxyFor(target, options.env),
      onEvent: (e) => options.emit({ ...use, ...e }),
    });
    options.emit({ type: "verified", ...use, sha256: artifact.sha256, bytes: artifact.size });
  };
  const { store } = options;
  if (!store) await fromNetwork();
  else {
    await store.withBlob(artifact, use, async (locked) => {
      if (await store.take(artifact, partial, use, locked)) return;
      await fromNetwork();
      if (locked) await store.add(partial, artifact, use);
    });
  }
  return { artifact, url, partial };
}

/**
 * A `.partial` that shares its inode with a cache blob was placed from the cache, not downloaded: resuming
 * into it would append to (or truncate) the blob itself, so it is unlinked and the download starts afresh.
 */
async function forgetSharedPartial(partial: string): Promise<void> {
  const links = await stat(partial).then(
    (s) => s.nlink,
    () => 0,
  );
  if (links > 1) await rm(partial, { force: true });
}

/**
 * Offline, every missing artifact must be a complete download on disk, a blob in the download cache or a
 * file: URL; otherwise one error names them all, before anything is fetched.
 */
export async function requireLocalSources(
  dir: string,
  entry: CatalogEntry,
  stale: Artifact[],
  env: NodeJS.ProcessEnv,
  store?: DownloadStore,
): Promise<void> {
  const missing: string[] = [];
  for (const artifact of stale) {
    const url = downloadUrl(artifact, env);
    if (new URL(url).protocol === "file:") continue;
    const have = await stat(partialPath(dir, artifact)).then(
      (s) => s.size,
      () => 0,
    );
    if (have === artifact.size) continue;
    const stored = await store?.find(artifact.sha256).catch(() => undefined);
    if (stored?.size === artifact.size) continue;
    missing.push(
      `${artifact.final_name} (${describeKind(artifact.kind)}, ${formatBytes(artifact.size)} from ${redactUrl(url)})`,
    );
  }
  if (missing.length === 0) return;
  const image = imageName(entry);
  throw new UnavailableError(`${image} is not cached, and offline mode forbids downloading it`, {
    detail: `missing in ${dir}:\n${missing.map((m) => `  ${m}`).join("\n")}`,
    hint:
      `run \`castra images pull ${image}\` where the network is reachable, copy .castra/images/${entry.id}/${entry.version}/ ` +
      "from a machine that has it, or point CASTRA_MIRROR at a file:// mirror",
  });
}
