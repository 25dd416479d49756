import { chmod, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { fsError } from "../errors.js";
import { describeKind, imageName } from "./catalog.js";
import type { Artifact, ArtifactKind, CatalogEntry } from "./catalog-schema.js";
import { refuseReferences } from "./disk-references.js";
import { type Fetched, type FetchOptions, fetchArtifact, requireLocalSources } from "./fetch-artifact.js";
import {
  MANIFEST_FILE,
  type ManifestArtifact,
  type Reconciliation,
  sha256File,
  stampOf,
} from "./manifest.js";
import { redactUrl } from "./redact-url.js";
import { applyTransforms, needsQemuImg, requireQemuImg } from "./transforms.js";

/** What fetching needs is all that materialising needs. */
export type MaterialiseOptions = FetchOptions;

/**
 * Builds every artifact the reconciliation did not keep, in three phases: fetch and verify all downloads,
 * transform all of them on temporary names, then move every result into place (read-only). A failure in the
 * first two phases leaves no final file behind, only `.partial` downloads to resume.
 */
export async function materialise(
  entry: CatalogEntry,
  dir: string,
  state: Reconciliation,
  options: MaterialiseOptions,
): Promise<Map<ArtifactKind, ManifestArtifact>> {
  const image = imageName(entry);
  const stale = entry.artifacts.filter((a) => !state.intact.has(a.kind));
  await clearLeftovers(dir, entry, stale, state);
  if (options.offline) await requireLocalSources(dir, entry, stale, options.env, options.store?.store);
  // Checked before any byte is downloaded: a missing tool must not cost the user a 122 MiB download first.
  // A root disk always needs it: whatever its transforms, it is inspected before it is kept.
  const inspectsDisk = stale.some((a) => a.kind === "root_disk");
  const qemuImg = needsQemuImg(stale) || inspectsDisk ? await requireQemuImg(options.env, image) : undefined;

  const fetched: Fetched[] = [];
  for (const artifact of stale) fetched.push(await fetchArtifact(entry, artifact, dir, options));

  const outputs: { fetched: Fetched; path: string; sha256: string }[] = [];
  try {
    for (const f of fetched) {
      const about = { image, artifact: f.artifact.kind };
      const label = `The ${describeKind(f.artifact.kind)} of ${image}`;
      const path = await applyTransforms(f.partial, f.artifact, {
        qemuImg,
        signal: options.signal,
        onStep: (step) => options.emit({ type: "transform", ...about, ...step }),
        label,
      });
      const output = { fetched: f, path, sha256: f.artifact.sha256 };
      outputs.push(output);
      // As QEMU will open it (format detected): one self-contained disk, or nothing is kept.
      if (qemuImg && f.artifact.kind === "root_disk") await refuseReferences(qemuImg, path, label);
      // Only a file the transforms rewrote is hashed again; a plain download keeps its verified sha256.
      if (f.artifact.transforms.some((t) => t.type !== "rename")) output.sha256 = await sha256File(path);
    }
  } catch (err) {
    await Promise.all(
      outputs.filter((o) => o.path !== o.fetched.partial).map((o) => rm(o.path, { force: true })),
    );
    throw err;
  }

  const records = new Map<ArtifactKind, ManifestArtifact>();
  for (const { fetched: f, path, sha256 } of outputs) {
    const final = join(dir, f.artifact.final_name);
    try {
      await rename(path, final);
      await chmod(final, 0o444);
      if (path !== f.partial) await rm(f.partial, { force: true });
    } catch (err) {
      throw fsError(err, "move the image into place", final);
    }
    const stamp = await stampOf(final);
    records.set(f.artifact.kind, {
      kind: f.artifact.kind,
      url: redactUrl(f.artifact.url),
      fetched_from: redactUrl(f.url),
      source_sha256: f.artifact.sha256,
      source_size: f.artifact.size,
      final_name: f.artifact.final_name,
      final_sha256: sha256,
      final_size: stamp.size,
      stamp,
      transforms: f.artifact.transforms,
      materialised_at: new Date().toISOString(),
    });
  }
  return records;
}

/** Removes what a rebuild replaces or an earlier crash left: stale finals and temporaries, never downloads. */
async function clearLeftovers(dir: string, entry: CatalogEntry, stale: Artifact[], state: Reconciliation) {
  const wanted = new Set(entry.artifacts.map((a) => a.final_name));
  const orphans = (state.manifest?.artifacts ?? []).map((r) => r.final_name).filter((n) => !wanted.has(n));
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw fsError(err, "read the image directory", dir);
  }
  const temporaries = names.filter((n) => n.endsWith(".tmp.partial") || n === `${MANIFEST_FILE}.partial`);
  const doomed = [...stale.map((a) => a.final_name), ...orphans, ...temporaries];
  await Promise.all(doomed.map((n) => rm(join(dir, n), { force: true })));
}
