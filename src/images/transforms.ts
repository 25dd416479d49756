import { rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import * as z from "zod/mini";
import { ToolMissingError } from "../errors.js";
import { findOnPath, QEMU_IMG } from "../host/tools.js";
import "../zod-messages.js";
import { plainFileName } from "./catalog-names.js";
import { convertImage, DISK_FORMATS, stripVhdFooter } from "./disk-conversion.js";
import { refuseReferences } from "./disk-references.js";

/** Where a step writes before the final rename: `*.partial`, the one suffix a failure may leave behind. */
export function transformTempName(output: string): string {
  return `${output}.tmp.partial`;
}

/** What a step works on: the file the previous step left, under the name the catalog gives it so far. */
interface StepInput {
  path: string;
  name: string;
  /** The image directory: new files go there, on temporary names. */
  dir: string;
  qemuImg: string;
  signal?: AbortSignal;
  /** "The root disk of alpine-minimal@v1": what errors call the file. */
  label: string;
}

/** What a step leaves: the file for the next step, whether it is a new one (removed on failure), and what changed. */
interface StepOutput {
  path: string;
  created: boolean;
  from: string;
  to: string;
}

/** One kind of transform: how the catalog writes it, what it does, and how people are told. */
interface TransformKind<Schema extends z.core.$ZodType> {
  schema: Schema;
  run(step: StepInput, transform: z.output<Schema>): Promise<StepOutput>;
  /** One line for the terminal and the log: "Converted raw → qcow2". */
  describe(done: StepOutput): string;
  /** Whether it runs qemu-img (checked before anything is downloaded). */
  usesQemuImg?: boolean;
}

const kind = <Schema extends z.core.$ZodType>(k: TransformKind<Schema>) => k;

const diskFormat = z.enum(DISK_FORMATS, { error: `must be one of ${DISK_FORMATS.join(", ")}` });

/**
 * Every transform a catalog artifact may list, in one table: a new transform is one entry here (its schema,
 * its step and its description); the catalog validator, the pipeline and the renderer all read this table.
 */
export const TRANSFORMS = {
  // Stripping is a truncation, so the file stays a valid prefix of the download: resumable if we fail later.
  strip_vhd_footer: kind({
    schema: z.strictObject({ type: z.literal("strip_vhd_footer") }),
    async run(step) {
      await stripVhdFooter(step.path);
      return { path: step.path, created: false, from: "vhd", to: "raw" };
    },
    describe: () => "Stripped the VHD footer",
  }),
  qemu_img_convert: kind({
    schema: z.strictObject({
      type: z.literal("qemu_img_convert"),
      from: diskFormat,
      to: diskFormat,
      output: plainFileName,
    }),
    async run(step, t) {
      // Read as `from`, the download must not pull other files of this host into the conversion.
      await refuseReferences(step.qemuImg, step.path, step.label, t.from);
      const out = join(step.dir, transformTempName(t.output));
      // qemu-img leaves what it wrote when it fails (a full disk): the step's output goes with the failure.
      await convertImage(step.qemuImg, step.path, out, t.from, t.to, step.signal).catch(async (err) => {
        await rm(out, { force: true });
        throw err;
      });
      return { path: out, created: true, from: t.from, to: t.to };
    },
    describe: (done) => `Converted ${done.from} → ${done.to}`,
    usesQemuImg: true,
  }),
  rename: kind({
    schema: z.strictObject({ type: z.literal("rename"), output: plainFileName }),
    run: async (step, t) => ({ path: step.path, created: false, from: step.name, to: t.output }),
    describe: (done) => `Named it ${done.to}`,
  }),
};

type Table = typeof TRANSFORMS;
export type TransformType = keyof Table;
/** One step as a catalog entry lists it, derived from the table's schemas. */
export type Transform = { [K in TransformType]: z.output<Table[K]["schema"]> }[TransformType];

const TYPES = Object.keys(TRANSFORMS) as TransformType[];
const typeList = `${TYPES.slice(0, -1).join(", ")} or ${TYPES.at(-1)}`;

/** The catalog's `transforms` entries: one of the table's kinds, by `type`. */
export const transformSchema = z.discriminatedUnion(
  "type",
  TYPES.map((t) => TRANSFORMS[t].schema) as unknown as [Table[TransformType]["schema"]],
  { error: `must be ${typeList}` },
);

function kindOf(t: Transform): TransformKind<z.core.$ZodType> {
  return TRANSFORMS[t.type] as TransformKind<z.core.$ZodType>;
}

/** What one finished step did, for the `transform` event. */
export interface TransformStep {
  name: TransformType;
  from: string;
  to: string;
  summary: string;
}

export function needsQemuImg(artifacts: readonly { transforms: readonly Transform[] }[]): boolean {
  return artifacts.some((a) => a.transforms.some((t) => kindOf(t).usesQemuImg));
}

/** qemu-img's absolute path, or ToolMissingError (exit 72) with install lines, before anything is downloaded. */
export async function requireQemuImg(env: NodeJS.ProcessEnv, image: string): Promise<string> {
  const found = await findOnPath(QEMU_IMG, env.PATH);
  if (found) return found;
  throw new ToolMissingError("qemu-img is not installed", {
    detail: [
      `The managed image ${image} is converted with qemu-img, which is not on PATH. Install it with:`,
      "  Debian/Ubuntu: sudo apt-get install qemu-utils",
      "  Fedora:        sudo dnf install qemu-img",
      "  macOS:         brew install qemu",
    ].join("\n"),
    hint: "install qemu-img as shown above, check it with `qemu-img --version`, then run the command again",
  });
}

/**
 * Runs the artifact's transforms on `input` (the verified download) and returns the path of the result, still on a
 * temporary name in the same directory. Intermediate files are removed; on failure every file this call
 * created is removed and `input` is left where it was.
 */
export async function applyTransforms(
  input: string,
  artifact: { transforms: readonly Transform[] },
  options: {
    qemuImg?: string;
    signal?: AbortSignal;
    onStep?: (step: TransformStep) => void;
    label?: string;
  },
): Promise<string> {
  let current: StepInput = {
    path: input,
    name: basename(input),
    dir: dirname(input),
    qemuImg: options.qemuImg ?? QEMU_IMG,
    signal: options.signal,
    label: options.label ?? `The download ${basename(input)}`,
  };
  const created: string[] = [];
  try {
    for (const t of artifact.transforms) {
      const k = kindOf(t);
      const done = await k.run(current, t);
      if (done.created) {
        created.push(done.path);
        if (current.path !== input) await rm(current.path, { force: true });
      }
      options.onStep?.({ name: t.type, from: done.from, to: done.to, summary: k.describe(done) });
      current = { ...current, path: done.path, name: "output" in t ? t.output : current.name };
    }
    return current.path;
  } catch (err) {
    await Promise.all(created.map((f) => rm(f, { force: true })));
    throw err;
  }
}
