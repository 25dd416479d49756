import { dirname, join } from "node:path";
import { CastraError, InterruptedError, UsageError } from "../errors.js";
import { acquireLock } from "../host/lock.js";
import { ensurePrivateDir, refuseLink, refuseLinksIn } from "../host/private-files.js";
import { catalogDigest, downloadUrl, findEntry, imageName, loadCatalog } from "./catalog.js";
import type { ArtifactKind, CatalogEntry, QemuProfile } from "./catalog-schema.js";
import { DEFAULT_MIN_BYTES_PER_SECOND, DEFAULT_STALL_TIMEOUT_MS } from "./download.js";
import { DownloadStore } from "./download-store.js";
import type { ImageEvent } from "./events.js";
import { imageLogPath, openImageLog } from "./image-log.js";
import { type Manifest, type ManifestArtifact, reconcile, writeManifest } from "./manifest.js";
import { materialise } from "./materialise.js";
import { oneAtATime } from "./one-at-a-time.js";
import { proxyFor } from "./proxy-env.js";
import { StoreSession } from "./store-session.js";

export interface ImageSpec {
  name: string;
  version: string;
}

export interface EnsureImageOptions {
  /** The project's `.castra/` directory. */
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** Never touch the network: the image must already be cached (or reachable through file: URLs). */
  offline?: boolean;
  signal?: AbortSignal;
  onEvent?: (event: ImageEvent) => void;
  /** Default: CASTRA_STALL_TIMEOUT seconds, else 30 s. */
  stallTimeoutMs?: number;
  /** The rate every transfer must average (see `transferDeadlineMs`). Default: CASTRA_MIN_RATE KiB/s, else 32. */
  minBytesPerSecond?: number;
  /**
   * How long to wait for another castra holding this image (or downloading the same bytes into the download
   * cache). Default: CASTRA_LOCK_TIMEOUT seconds, else 15 min.
   */
  lockTimeoutMs?: number;
}

export interface MaterialisedImage {
  id: string;
  version: string;
  dir: string;
  entry: CatalogEntry;
  /** Absolute path of each artifact's final file, by kind. */
  files: Partial<Record<ArtifactKind, string>>;
  profile: QemuProfile;
  cacheHit: boolean;
}

/** `.castra/images/<id>/<version>` */
export function imageDir(stateDir: string, id: string, version: string): string {
  return join(stateDir, "images", id, version);
}

/** The lock file of an image directory; `castra images prune` and `verify` take it too. */
export function imageLockPath(dir: string): string {
  return join(dir, ".lock");
}

/**
 * Materialises a managed image under `.castra/images/<id>/<version>/` (docs/design.md, "Managed images"):
 * a cache hit costs a manifest read and a stat per file; otherwise fetch (from the per-user download cache
 * when it holds the bytes, else the network), verify, transform, then the manifest, written last. Emits events instead of printing; records them in the image-manager log.
 */
export async function ensureImage(spec: ImageSpec, options: EnsureImageOptions): Promise<MaterialisedImage> {
  const catalog = await loadCatalog(options.env);
  const entry = findEntry(catalog, spec.name, spec.version);
  // A bad CASTRA_MIRROR or proxy variable is refused (64) before anything is created or requested.
  for (const artifact of entry.artifacts) proxyFor(new URL(downloadUrl(artifact, options.env)), options.env);
  const image = imageName(entry);
  const dir = imageDir(options.stateDir, entry.id, entry.version);
  const log = openImageLog(options.stateDir);
  const emit = (event: ImageEvent) => {
    log.event(event);
    options.onEvent?.(event);
  };
  try {
    // 0700 and no link on the way, nor among the files the pipeline will write (partials, the log).
    await ensurePrivateDir(options.stateDir, dir);
    await ensurePrivateDir(options.stateDir, dirname(imageLogPath(options.stateDir)));
    await refuseLinksIn(dir);
    await refuseLink(imageLogPath(options.stateDir));
    const lockTimeoutMs =
      options.lockTimeoutMs ?? secondsFromEnv(options.env, "CASTRA_LOCK_TIMEOUT") ?? 15 * 60_000;
    return await oneAtATime(dir, async () => {
      const lock = await acquireLock(imageLockPath(dir), {
        purpose: `image ${image}`,
        timeoutMs: lockTimeoutMs,
        onWait: (holder) => emit({ type: "lock-wait", image, pid: holder.pid }),
        signal: options.signal,
      });
      try {
        return await ensureLocked(entry, dir, { ...options, lockTimeoutMs }, emit);
      } finally {
        await lock.release();
      }
    });
  } catch (err) {
    const reported =
      options.signal?.aborted && !(err instanceof CastraError)
        ? new InterruptedError(`Interrupted while preparing ${image}`, { hint: "run the same command again" })
        : err;
    log.failure(image, reported);
    throw reported;
  }
}

async function ensureLocked(
  entry: CatalogEntry,
  dir: string,
  options: EnsureImageOptions & { lockTimeoutMs: number },
  emit: (event: ImageEvent) => void,
): Promise<MaterialisedImage> {
  const image = imageName(entry);
  const digest = catalogDigest(entry);
  const state = await reconcile(dir, entry, digest);
  const now = new Date().toISOString();
  if (state.hit && state.manifest) {
    if (state.refreshed) await writeManifest(dir, withArtifacts(state.manifest, entry, state.intact, now));
    emit({ type: "cache-hit", image, dir });
  } else {
    if (state.reason) emit({ type: "rebuild", image, reason: state.reason });
    const store = DownloadStore.fromEnv(options.env);
    const made = await materialise(entry, dir, state, {
      store:
        store &&
        new StoreSession(store, { emit, signal: options.signal, lockTimeoutMs: options.lockTimeoutMs }),
      env: options.env,
      offline: options.offline ?? false,
      signal: options.signal,
      stallTimeoutMs:
        options.stallTimeoutMs ??
        secondsFromEnv(options.env, "CASTRA_STALL_TIMEOUT") ??
        DEFAULT_STALL_TIMEOUT_MS,
      minBytesPerSecond:
        options.minBytesPerSecond ??
        kibPerSecondFromEnv(options.env, "CASTRA_MIN_RATE") ??
        DEFAULT_MIN_BYTES_PER_SECOND,
      emit,
    });
    const base: Manifest = state.manifest ?? {
      format: 1,
      image: entry.id,
      version: entry.version,
      catalog_digest: digest,
      created_at: now,
      updated_at: now,
      artifacts: [],
    };
    const records = new Map([...state.intact, ...made]);
    await writeManifest(dir, { ...withArtifacts(base, entry, records, now), catalog_digest: digest });
  }
  const files = Object.fromEntries(entry.artifacts.map((a) => [a.kind, join(dir, a.final_name)]));
  emit({ type: "ready", image, dir, files });
  return {
    id: entry.id,
    version: entry.version,
    dir,
    entry,
    files,
    profile: entry.profile,
    cacheHit: state.hit,
  };
}

/** The manifest with one record per catalog artifact, in catalog order. */
function withArtifacts(
  manifest: Manifest,
  entry: CatalogEntry,
  records: Map<ArtifactKind, ManifestArtifact>,
  now: string,
): Manifest {
  const artifacts = entry.artifacts.flatMap((a) => records.get(a.kind) ?? []);
  return { ...manifest, image: entry.id, version: entry.version, updated_at: now, artifacts };
}

/** A positive number from the environment, in `unit`; undefined when unset; 64 when it is anything else. */
function positiveFromEnv(env: NodeJS.ProcessEnv, name: string, unit: string, example: number) {
  const text = env[name];
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    throw new UsageError(`${name} must be a positive number of ${unit}, not "${text}"`, {
      hint: `unset it or set e.g. ${name}=${example}`,
    });
  }
  return value;
}

function secondsFromEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const seconds = positiveFromEnv(env, name, "seconds", 30);
  return seconds === undefined ? undefined : seconds * 1000;
}

/** Bytes per second from a variable that counts KiB per second. */
function kibPerSecondFromEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const kib = positiveFromEnv(env, name, "KiB per second", 32);
  return kib === undefined ? undefined : kib * 1024;
}
