import * as z from "zod/mini";
import { parseMemorySize } from "../config/memory.js";
import { CATALOG_NAME } from "../config/model.js";
import "../zod-messages.js";
import { checkedString, plainFileName } from "./catalog-names.js";
import { transformSchema } from "./transforms.js";

/**
 * The catalog's shape as zod schemas, and every catalog type derived from them: the built-in entries and a
 * CASTRA_CATALOG file are checked against the same definitions that type them.
 */

export const ARTIFACT_KINDS = ["root_disk", "kernel", "initrd"] as const;

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

const artifact = z.strictObject({
  kind: z.enum(ARTIFACT_KINDS, { error: "must be root_disk, kernel or initrd" }),
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
  final_name: plainFileName,
  transforms: z._default(z.array(transformSchema), []),
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
  // Both reach QEMU's argv: a machine type alone (`q35,initrd=/host/file` would be QEMU options), and a
  // kernel command line on one printable line.
  append: z.optional(
    z
      .string()
      .check(
        z.regex(/^[\x20-\x7e]{0,2048}$/, "must be printable ASCII on one line, at most 2048 characters"),
      ),
  ),
  machine: z.optional(
    z
      .string()
      .check(
        z.regex(
          /^[a-z0-9][a-z0-9._-]{0,63}$/,
          "must be a QEMU machine type such as q35 or pc-q35-7.2, without options",
        ),
      ),
  ),
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
const directoryName = z
  .string()
  .check(
    z.regex(
      CATALOG_NAME,
      "must be letters, digits, `.`, `_` or `-`, without `..` (it becomes a directory name)",
    ),
  );

const entryFields = z.strictObject({
  id: directoryName,
  version: directoryName,
  artifacts: z.array(artifact).check(z.minLength(1, "must list at least the root_disk artifact")),
  profile: z._default(profile, {}),
});

const entry = entryFields.check(
  z.superRefine((e, ctx) => {
    for (const issue of entryProblems(e)) ctx.addIssue({ code: "custom", ...issue });
  }),
);

export const catalogFile = z.strictObject({
  images: z.array(entry, { error: "must be a list of image entries" }),
});

/** Cross-field rules: one artifact per kind, one root disk, distinct file names, the chain ends at final_name. */
function entryProblems(e: z.output<typeof entryFields>): { path: (string | number)[]; message: string }[] {
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

export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];
/** One downloaded file and the steps from its bytes to the final file, applied in order. */
export type Artifact = z.output<typeof artifact>;
/** How QEMU should boot the image; every field is a hint that castra.toml may override. */
export type QemuProfile = z.output<typeof profile>;
export type CatalogEntry = z.output<typeof entry>;
