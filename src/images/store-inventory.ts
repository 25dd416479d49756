import { type Catalog, describeKind, imageName } from "./catalog.js";
import type { StoredBlob } from "./download-store.js";
import { sha256File } from "./manifest.js";

const DAY_MS = 24 * 60 * 60 * 1000;

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Which catalog artifacts (built in plus CASTRA_CATALOG) each sha256 is: "alpine-minimal@v1 root disk". */
export function catalogReferences(catalog: Catalog): Map<string, string[]> {
  const refs = new Map<string, string[]>();
  for (const entry of catalog.entries) {
    for (const artifact of entry.artifacts) {
      const names = refs.get(artifact.sha256) ?? [];
      names.push(`${imageName(entry)} ${describeKind(artifact.kind)}`);
      refs.set(artifact.sha256, names);
    }
  }
  return refs;
}

/** When the blob was last used: its record says so, else the file's own date. */
export function lastUsed(blob: StoredBlob): Date {
  const recorded = blob.record ? Date.parse(blob.record.last_used_at) : Number.NaN;
  return Number.isNaN(recorded) ? blob.modified : new Date(recorded);
}

/** Re-hashes a blob against its name: the full check `castra images verify --cache` makes. */
export async function blobProblem(blob: StoredBlob): Promise<string | undefined> {
  const actual = await sha256File(blob.path);
  if (actual !== blob.sha256) return `its content hashes to ${actual} (${blob.size} bytes)`;
  if (blob.record && blob.record.size !== blob.size)
    return `${blob.size} bytes, but it was stored with ${blob.record.size}`;
  return undefined;
}

export interface PruneCandidate {
  blob: StoredBlob;
  why: string;
}

/**
 * The blobs `castra images prune --cache` removes: those no catalog entry names any more and, with
 * `olderThanDays`, those not used for longer than that.
 */
export function pruneCandidates(
  blobs: StoredBlob[],
  catalog: Catalog,
  olderThanDays: number | undefined,
  now = new Date(),
): PruneCandidate[] {
  const refs = catalogReferences(catalog);
  const candidates: PruneCandidate[] = [];
  for (const blob of blobs) {
    const idleDays = (now.getTime() - lastUsed(blob).getTime()) / DAY_MS;
    if (!refs.has(blob.sha256)) candidates.push({ blob, why: "no catalog entry uses it" });
    else if (olderThanDays !== undefined && idleDays > olderThanDays)
      candidates.push({
        blob,
        why: `unused for ${idleDays < 1 ? "less than a day" : plural(Math.floor(idleDays), "day")}`,
      });
  }
  return candidates;
}
