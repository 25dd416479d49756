import { createHash } from "node:crypto";
import { DataError, UsageError } from "../errors.js";
import type { Artifact, ArtifactKind, CatalogEntry } from "./catalog-schema.js";
import { redactUrl } from "./redact-url.js";

export interface Catalog {
  entries: CatalogEntry[];
  /** The CASTRA_CATALOG file merged over the built-in entries, if any. */
  overrideFile?: string;
}

const MIB = 1024 * 1024;

/** The built-in catalog: Alpine 3.22.2's tiny BIOS cloud image, shipped as a fixed VHD. */
export const BUILTIN_CATALOG: readonly CatalogEntry[] = [
  {
    id: "alpine-minimal",
    version: "v1",
    artifacts: [
      {
        kind: "root_disk",
        url: "https://dl-cdn.alpinelinux.org/alpine/v3.22/releases/cloud/aws_alpine-3.22.2-x86_64-bios-tiny-r0.vhd",
        sha256: "8f58945cd972f31b8a7e3116d2b33cdb4298e6b3c0609c0bfd083964678afffb",
        size: 127926784,
        final_name: "rootfs.qcow2",
        transforms: [
          { type: "strip_vhd_footer" },
          { type: "qemu_img_convert", from: "raw", to: "qcow2", output: "rootfs.qcow2" },
        ],
      },
    ],
    // It boots from its own bootloader (extlinux, console on ttyS0), so there is no kernel or initrd.
    // Its tiny-cloud reads SSH keys and hostname from EC2's metadata API, which castra serves.
    profile: {
      cpus: 1,
      memory: 512 * MIB,
      disk_interface: "virtio",
      ready_pattern: "login:",
      metadata: "ec2",
      login_user: "alpine",
    },
  },
];

/** "alpine-minimal@v1" */
export function imageName(entry: Pick<CatalogEntry, "id" | "version">): string {
  return `${entry.id}@${entry.version}`;
}

/** The built-in entries, with those of `CASTRA_CATALOG=FILE` added or replacing same-named ones. */
export async function loadCatalog(env: NodeJS.ProcessEnv): Promise<Catalog> {
  const file = env.CASTRA_CATALOG;
  if (!file) return { entries: [...BUILTIN_CATALOG] };
  // Loaded only for a CASTRA_CATALOG file: its validator (zod) costs every other command its start-up time.
  const { readCatalogOverride } = await import("./catalog-override.js");
  const override = await readCatalogOverride(file);
  const replaced = new Set(override.map(imageName));
  const kept = BUILTIN_CATALOG.filter((e) => !replaced.has(imageName(e)));
  return { entries: [...kept, ...override], overrideFile: file };
}

export function findEntry(catalog: Catalog, name: string, version: string): CatalogEntry {
  const entry = catalog.entries.find((e) => e.id === name && e.version === version);
  if (entry) return entry;
  const known = catalog.entries.map(imageName).join(", ") || "(none)";
  return unknownImage(`${name}@${version}`, known, catalog.overrideFile);
}

function unknownImage(wanted: string, known: string, overrideFile?: string): never {
  throw new DataError(`Unknown managed image ${wanted}`, {
    detail: `The catalog${overrideFile ? ` (built in, plus ${overrideFile})` : ""} knows: ${known}.`,
    hint: `use one of those, or describe ${wanted} in a JSON catalog file passed as CASTRA_CATALOG=FILE`,
  });
}

/** Parses "ID@VERSION" (or a bare ID the catalog has exactly one version of) as typed on the command line. */
export function parseImageRef(text: string, catalog: Catalog): { name: string; version: string } {
  const at = text.lastIndexOf("@");
  if (at > 0 && at < text.length - 1) return { name: text.slice(0, at), version: text.slice(at + 1) };
  if (at !== -1) {
    throw new UsageError(`"${text}" is not an image name`, {
      hint: "write it as ID@VERSION, e.g. alpine-minimal@v1",
    });
  }
  const versions = catalog.entries.filter((e) => e.id === text);
  if (versions.length === 1 && versions[0]) return { name: text, version: versions[0].version };
  if (versions.length === 0) unknownImage(text, catalog.entries.map(imageName).join(", ") || "(none)");
  throw new UsageError(`${text} has several versions in the catalog`, {
    detail: `versions: ${versions.map((e) => e.version).join(", ")}`,
    hint: `name one, e.g. ${imageName(versions[0] as CatalogEntry)}`,
  });
}

/** sha256 of the entry's canonical JSON: any change to the entry changes it, key order never does. */
export function catalogDigest(entry: CatalogEntry): string {
  return createHash("sha256").update(canonicalJson(entry)).digest("hex");
}

/** JSON with object keys sorted and undefined fields dropped: equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const fields = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`);
    return `{${fields.join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Where an artifact is fetched from: its catalog URL, or `CASTRA_MIRROR/<basename>` (checksums unchanged). */
export function downloadUrl(artifact: Artifact, env: NodeJS.ProcessEnv): string {
  const mirror = env.CASTRA_MIRROR;
  if (!mirror) return artifact.url;
  let base: URL;
  try {
    base = new URL(mirror);
  } catch {
    throw new UsageError(`CASTRA_MIRROR is not a URL: ${redactUrl(mirror)}`, {
      hint: "set it to the base URL of the mirror, e.g. CASTRA_MIRROR=http://mirror.lan/castra",
    });
  }
  if (!["http:", "https:", "file:"].includes(base.protocol)) {
    throw new UsageError(`CASTRA_MIRROR must be an http, https or file URL, not ${base.protocol}`, {
      hint: "e.g. CASTRA_MIRROR=http://mirror.lan/castra or CASTRA_MIRROR=file:///srv/castra",
    });
  }
  const basename = new URL(artifact.url).pathname.split("/").pop() ?? "";
  return `${mirror.replace(/\/+$/, "")}/${basename}`;
}

/** Human name of an artifact kind, for messages: "root disk". */
export function describeKind(kind: ArtifactKind): string {
  return kind.replace("_", " ");
}
