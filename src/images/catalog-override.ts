import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import * as z from "zod/mini";
import { parseMemorySize } from "../config/memory.js";
import { DataError, fsError } from "../errors.js";
import "../zod-messages.js";
import type { CatalogEntry } from "./catalog.js";

/** Formats `qemu_img_convert` may name; they end up in qemu-img's argv, so the list is closed. */
export const DISK_FORMATS = ["raw", "qcow2", "vpc", "vhdx", "vmdk", "vdi", "qed"] as const;
export type DiskFormat = (typeof DISK_FORMATS)[number];

/** Ids and versions become directory names under `.castra/images/`. */
const IMAGE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Names the pipeline itself uses inside an image directory. */
const RESERVED_NAMES = new Set(["manifest.json"]);

/** Why `name` is not a plain file name that stays inside the image directory, or undefined when it is. */
export function fileNameProblem(name: string): string | undefined {
  if (name === "" || name === "." || name === "..") return "must be a file name, not empty, `.` or `..`";
  if (name.includes("/") || name.includes("\\")) return "must be a plain file name, without `/` or `\\`";
  if (name.includes("..")) return "must not contain `..`";
  if (name.startsWith(".")) return "must not start with a dot";
  if (name.length > 200) return "must be at most 200 characters long";
  if ([...name].some((c) => c.charCodeAt(0) < 0x20)) return "must not contain control characters";
  if (RESERVED_NAMES.has(name)) return `must not be ${name}, which castra writes itself`;
  if (/\.(partial|tmp)$/.test(name))
    return "must not end in .partial or .tmp, which castra uses for downloads";
  return undefined;
}

/** A string that `problem` has nothing to say about. */
function checkedString(problem: (text: string) => string | undefined) {
  return z.string().check(
    z.superRefine((text, ctx) => {
      const message = problem(text);
      if (message) ctx.addIssue({ code: "custom", message });
    }),
  );
}

const fileName = checkedString(fileNameProblem);

const url = checkedString((text) => {
  let protocol: string;
  try {
    protocol = new URL(text).protocol;
  } catch {
    return "must be an absolute URL (https://..., http://... or file:///...)";
  }
  if (!["http:", "https:", "file:"].includes(protocol))
    return `must use http, https or file, not ${protocol.replace(/:$/, "")}`;
  return undefined;
});

const format = z.enum(DISK_FORMATS, { error: `must be one of ${DISK_FORMATS.join(", ")}` });

const transform = z.discriminatedUnion(
  "type",
  [
    z.strictObject({ type: z.literal("strip_vhd_footer") }),
    z.strictObject({ type: z.literal("qemu_img_convert"), from: format, to: format, output: fileName }),
    z.strictObject({ type: z.literal("rename"), output: fileName }),
  ],
  { error: "must be strip_vhd_footer, qemu_img_convert or rename" },
);

const artifact = z.strictObject({
  kind: z.enum(["root_disk", "kernel", "initrd"], { error: "must be root_disk, kernel or initrd" }),
  url,
  sha256: z
    .string({ error: "is required: the sha256 of the downloaded file, 64 hex digits" })
    .check(
      z.regex(/^[0-9a-fA-F]{64}$/, "must be 64 hexadecimal digits (the sha256 of the downloaded file)"),
      z.toLowerCase(),
    ),
  size: z
    .number({ error: "is required: the size of the downloaded file in bytes" })
    .check(
      z.refine(Number.isInteger, "must be a whole number of bytes"),
      z.positive("must be a positive number of bytes"),
    ),
  final_name: fileName,
  transforms: z._default(z.array(transform), []),
});

/** Bytes, or a size such as "512 MiB"; a size that does not parse says why. */
const memory = z.pipe(
  z.union([z.int().check(z.positive()), z.string()], {
    error: 'must be a number of bytes or a size like "512 MiB"',
  }),
  z.transform((value: number | string, payload) => {
    if (typeof value === "number") return value;
    try {
      return parseMemorySize(value);
    } catch (err) {
      payload.issues.push({ code: "custom", message: (err as Error).message, input: value });
      return z.NEVER;
    }
  }),
);

const profile = z.strictObject({
  kernel: z.optional(
    z.literal("kernel", { error: 'must be "kernel" (the artifact kind passed as -kernel)' }),
  ),
  initrd: z.optional(
    z.literal("initrd", { error: 'must be "initrd" (the artifact kind passed as -initrd)' }),
  ),
  append: z.optional(z.string()),
  machine: z.optional(z.string()),
  cpus: z.optional(z.int().check(z.positive())),
  memory: z.optional(memory),
  disk_interface: z.optional(
    z.string().check(z.regex(/^[a-z0-9-]+$/, "must be a QEMU drive interface such as virtio or ide")),
  ),
  ready_pattern: z.optional(z.string().check(z.minLength(1))),
  metadata: z.optional(z.enum(["ec2", "none"], { error: 'must be "ec2" or "none"' })),
  login_user: z.optional(
    z.string().check(z.regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Unix user name such as alpine")),
  ),
});

/** Ids and versions: one plain directory level, so no `/` and no `..` anywhere in them. */
const directoryName = z.string().check(
  z.regex(IMAGE_ID, "must be letters, digits, `.`, `_` or `-` (it becomes a directory name)"),
  z.refine((name) => !name.includes(".."), "must not contain `..` (it becomes a directory name)"),
);

const entry = z
  .strictObject({
    id: directoryName,
    version: directoryName,
    artifacts: z.array(artifact).check(z.minLength(1, "must list at least the root_disk artifact")),
    profile: z._default(profile, {}),
  })
  .check(
    z.superRefine((e, ctx) => {
      for (const issue of entryProblems(e as CatalogEntry)) ctx.addIssue({ code: "custom", ...issue });
    }),
  );

const catalogFile = z.strictObject({ images: z.array(entry, { error: "must be a list of image entries" }) });

/** Cross-field rules: one artifact per kind, one root disk, distinct file names, the chain ends at final_name. */
function entryProblems(e: CatalogEntry): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const kinds = e.artifacts.map((a) => a.kind);
  if (!kinds.includes("root_disk"))
    problems.push({ path: ["artifacts"], message: "must include a root_disk artifact" });
  const names = new Set<string>();
  e.artifacts.forEach((a, i) => {
    if (kinds.indexOf(a.kind) !== i)
      problems.push({ path: ["artifacts", i, "kind"], message: `repeats ${a.kind}` });
    const outputs = a.transforms.flatMap((t, j) => ("output" in t ? [{ name: t.output, j }] : []));
    const last = outputs.at(-1);
    if (last && last.name !== a.final_name) {
      problems.push({
        path: ["artifacts", i, "transforms", last.j, "output"],
        message: `must equal final_name (${a.final_name}): the last output is the final file`,
      });
    }
    const own = new Set([a.final_name, ...outputs.map((o) => o.name)]);
    for (const name of own) {
      if (names.has(name))
        problems.push({ path: ["artifacts", i, "final_name"], message: `reuses the name ${name}` });
      names.add(name);
    }
  });
  for (const key of ["kernel", "initrd"] as const) {
    if (e.profile[key] && !kinds.includes(key)) {
      problems.push({
        path: ["profile", key],
        message: `names the ${key} artifact, which the entry does not have`,
      });
    }
  }
  return problems;
}

/** `images[0].artifacts[1].sha256` */
export function jsonPath(path: readonly PropertyKey[]): string {
  return path
    .map((part, i) => (typeof part === "number" ? `[${part}]` : i === 0 ? String(part) : `.${String(part)}`))
    .join("");
}

/** Reads and strictly validates a CASTRA_CATALOG file; every problem names the file and its JSON path. */
export async function readCatalogOverride(file: string): Promise<CatalogEntry[]> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw fsError(err, "read the catalog file given as CASTRA_CATALOG", path);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DataError(`${path}: not valid JSON`, {
      detail: (err as Error).message,
      hint: 'a catalog file is JSON: { "images": [ { "id": ..., "version": ..., "artifacts": [...] } ] }',
    });
  }
  return parseCatalogOverride(raw, path);
}

export function parseCatalogOverride(raw: unknown, path: string): CatalogEntry[] {
  const result = catalogFile.safeParse(raw);
  if (result.success) return result.data.images as CatalogEntry[];
  const issues = result.error.issues.map((issue) => {
    const where = jsonPath(issue.path) || "(top level)";
    return `${where}: ${issue.message}`;
  });
  const [first = ""] = issues;
  throw new DataError(`${path}: ${first}`, {
    detail: issues.length > 1 ? `${issues.length} problems:\n${issues.join("\n")}` : undefined,
    hint: `fix ${path} (CASTRA_CATALOG); every artifact needs url, sha256, size and a plain final_name`,
  });
}
