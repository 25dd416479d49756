import { childrenOf, flagOf, GLOBAL_OPTIONS } from "../parse.js";
import type { CommandSpec, OptionSpec } from "../spec.js";

/** One word the shell may offer, with the line `--help` shows for it. */
export interface Candidate {
  value: string;
  description?: string;
}

/** What to offer for the word under the cursor: these words, or the shell's own file names. */
export type Completion = { kind: "words"; words: Candidate[] } | { kind: "files" };

/** Names only the project or the catalog knows (`vm`, `image`), looked up when a placeholder asks for them. */
export type NameSource = (placeholder: string) => Promise<string[]>;

/** Placeholders whose values are file names (`--config <path>`, `-o, --output <path>`). */
const FILE_PLACEHOLDERS = new Set(["path", "dir", "file"]);

interface KnownFlag {
  long?: string;
  short?: string;
  valueName?: string;
  spec: OptionSpec;
}

/** Where the words before the cursor leave the command line. */
interface Position {
  spec?: CommandSpec;
  path: string;
  operands: number;
  /** The previous word is a flag waiting for its value. */
  pendingValue?: KnownFlag;
  afterDash: boolean;
}

/**
 * What completes `words` (the words after `castra`, the last one being the word under the cursor, maybe
 * empty), read from the command spec table the way the parser reads a command line. A placeholder is
 * offered its choices, file names, or what `names` knows for it.
 */
export async function completeWords(words: string[], names: NameSource): Promise<Completion> {
  const current = words.at(-1) ?? "";
  const at = position(words.slice(0, -1));
  // Past ssh's VM (or its --) the words are the remote command's: nothing castra knows.
  if (at.spec?.flagsBeforeOperands && (at.afterDash || at.operands > 0)) return { kind: "words", words: [] };
  if (at.pendingValue) {
    const { valueName, spec } = at.pendingValue;
    return completeValue(placeholderOf(valueName), choicesOf(spec), current, names);
  }
  if (current.startsWith("-") && !at.afterDash) return matching(flagCandidates(at.spec), current);
  const below = childrenOf(at.path).filter((c) => !c.hidden);
  if (below.length > 0 && at.operands === 0) {
    const commands = below.map((c) => ({
      value: c.name.split(" ").at(-1) as string,
      description: c.description,
    }));
    if (at.path === "") commands.push({ value: "help", description: "show help for a command" });
    return matching(commands, current);
  }
  const args = Object.values(at.spec?.args ?? {});
  const arg = args[Math.min(at.operands, args.length - 1)];
  if (!arg || (arg.kind === "operand" && at.operands >= args.length)) return { kind: "words", words: [] };
  const choices = arg.kind === "operand" ? arg.choices : undefined;
  return completeValue(placeholderOf(arg.name), choices, current, names);
}

function position(before: string[]): Position {
  const at: Position = { path: "", operands: 0, afterDash: false };
  for (const word of before) {
    if (at.pendingValue) {
      at.pendingValue = undefined;
      continue;
    }
    if (!at.afterDash && word === "--") {
      at.afterDash = true;
      continue;
    }
    if (!at.afterDash && word.startsWith("-") && word !== "-") {
      const flag = findFlag(at.spec, word);
      // `--x=v` and `-n20` carry their value; `--x v` and `-n 20` leave it for the next word.
      const carriesValue = word.includes("=") || (!word.startsWith("--") && word.length > 2);
      if (flag?.valueName && !carriesValue) at.pendingValue = flag;
      continue;
    }
    const next = childrenOf(at.path).find((c) => c.name.split(" ").at(-1) === word);
    if (next && at.operands === 0 && !at.afterDash) {
      at.path = next.name;
      at.spec = next;
      continue;
    }
    at.operands += 1;
  }
  return at;
}

/** The command's flags and the global ones, named as the parser names them. */
function flagsOf(spec: CommandSpec | undefined): KnownFlag[] {
  const options = { ...spec?.options, ...GLOBAL_OPTIONS };
  return Object.entries(options).flatMap(([key, option]) => {
    const flag = flagOf(key, option);
    return flag ? [{ ...flag, spec: option }] : [];
  });
}

function findFlag(spec: CommandSpec | undefined, word: string): KnownFlag | undefined {
  if (word.startsWith("--")) return flagsOf(spec).find((f) => f.long === word.slice(2).split("=")[0]);
  return flagsOf(spec).find((f) => f.short === word[1]);
}

function flagCandidates(spec: CommandSpec | undefined): Candidate[] {
  const flags = flagsOf(spec).flatMap((f) =>
    f.long && "description" in f.spec ? [{ value: `--${f.long}`, description: f.spec.description }] : [],
  );
  return [...flags, { value: "--help", description: "show help" }];
}

/** The choices `parseChoice` attached to a flag's parser (`--accel`: auto, kvm, tcg). */
function choicesOf(spec: OptionSpec): readonly string[] | undefined {
  if (spec.kind !== "value" && spec.kind !== "values") return undefined;
  return (spec.parse as { choices?: readonly string[] }).choices;
}

/** `[vm...]` → "vm", `<path>` → "path". */
function placeholderOf(name: string | undefined): string {
  return (name ?? "").replace(/[<>[\].]/g, "");
}

async function completeValue(
  placeholder: string,
  choices: readonly string[] | undefined,
  current: string,
  names: NameSource,
): Promise<Completion> {
  if (choices)
    return matching(
      choices.map((value) => ({ value })),
      current,
    );
  if (FILE_PLACEHOLDERS.has(placeholder)) return { kind: "files" };
  const known = await names(placeholder);
  return matching(
    known.map((value) => ({ value })),
    current,
  );
}

function matching(candidates: Candidate[], current: string): Completion {
  return { kind: "words", words: candidates.filter((c) => c.value.startsWith(current)) };
}
