import { closestKey } from "../config/suggest.js";
import { UsageError } from "../errors.js";
import { COMMANDS, type CommandId } from "./commands/specs.js";
import type { ArgumentSpec, CommandSpec, OptionSpec } from "./spec.js";
import { BadFlagValue } from "./spec.js";

/** The global flags every command accepts. */
export interface GlobalFlags {
  config?: string;
  skipDiscovery: boolean;
  noColor: boolean;
}

/** What the command line asks for: a command with its options, or help or the version to print. */
export type ParsedLine =
  | { kind: "run"; id: CommandId; options: Record<string, unknown>; global: GlobalFlags }
  | { kind: "help"; path: string[] }
  | { kind: "version" };

/** One flag as the parser sees it: its names, whether it takes a value, and where the value goes. */
interface Flag {
  key: string;
  long?: string;
  short?: string;
  /** `<value>` in its spelling; absent for a boolean flag. */
  valueName?: string;
  negated: boolean;
  /** Given again, it adds a value instead of replacing it. */
  repeatable: boolean;
  parse?: (text: string) => unknown;
}

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  config: {
    kind: "value",
    flags: "-c, --config <path>",
    description: "use this castra.toml (no discovery)",
    parse: String,
  },
  skipDiscovery: {
    kind: "flag",
    flags: "--skip-discovery",
    description: "only look for castra.toml in the current directory",
  },
  noColor: { kind: "flag", flags: "--no-color", description: "never colour the output" },
};

/** `-n, --tail <lines>` → its short and long names and its value placeholder. */
export function flagOf(key: string, spec: OptionSpec): Flag | undefined {
  if (spec.kind === "after-double-dash") return undefined;
  const short = /(?:^|[\s,])-([A-Za-z])\b/.exec(spec.flags)?.[1];
  const long = /--([a-z][a-z0-9-]*)/.exec(spec.flags)?.[1];
  const valueName = /<([^>]+)>/.exec(spec.flags)?.[1];
  // `--no-color` as a global is a plain switch whose key already says "no".
  const negated = spec.kind === "negated";
  const repeatable = spec.kind === "values";
  const parse = spec.kind === "value" || spec.kind === "values" ? spec.parse : undefined;
  return { key, long, short, valueName, negated, repeatable, parse };
}

/** Commands by path: "images pull" → its id. */
const BY_PATH = new Map(Object.entries(COMMANDS).map(([id, spec]) => [spec.name, id as CommandId]));

/** The commands directly below `path` ("" for the top level), in declaration order. */
export function childrenOf(path: string): CommandSpec[] {
  return Object.values(COMMANDS).filter((spec: CommandSpec) => {
    const parent = spec.name.split(" ").slice(0, -1).join(" ");
    return parent === path;
  });
}

/**
 * Parses castra's command line: global flags anywhere, one command (a group's subcommand after it), its
 * flags in any order (`--x v`, `--x=v`, `-x v`, `-xv`, `-ab`), `--` ending the flags (so does the first
 * operand of a command with `flagsBeforeOperands`). Mistakes are usage errors (exit 64) with a hint: a near
 * name when there is one, else the command's help.
 */
export function parseCommandLine(argv: string[]): ParsedLine {
  const global: GlobalFlags = { skipDiscovery: false, noColor: false };
  const globals = Object.entries(GLOBAL_OPTIONS).flatMap(([key, spec]) => flagOf(key, spec) ?? []);
  let path = "";
  let spec: CommandSpec | undefined;
  const options: Record<string, unknown> = {};
  const operands: string[] = [];
  let afterDash = false;
  let dashAt = -1;

  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (afterDash) {
      operands.push(token);
      continue;
    }
    if (token === "--") {
      afterDash = true;
      dashAt = operands.length;
      continue;
    }
    if (token === "-h" || token === "--help") return { kind: "help", path: path ? path.split(" ") : [] };
    if (!spec && (token === "-V" || token === "--version")) return { kind: "version" };
    if (token.startsWith("-") && token !== "-") {
      const own = spec ? ownFlags(spec) : [];
      i = takeFlag(
        argv,
        i,
        [...own, ...globals],
        (flag, value) => {
          const target = own.includes(flag) ? options : (global as unknown as Record<string, unknown>);
          const given = target[flag.key];
          target[flag.key] = flag.repeatable ? [...(Array.isArray(given) ? given : []), value] : value;
        },
        path,
      );
      continue;
    }
    const below = childrenOf(path);
    // A group takes a subcommand as its first operand; the top level always needs a command.
    if (below.length > 0 && (spec === undefined || operands.length === 0)) {
      const next = below.find((c) => c.name.split(" ").at(-1) === token);
      if (next) {
        path = next.name;
        spec = next;
        continue;
      }
      if (token === "help" && !spec) return { kind: "help", path: argv.slice(i + 1, i + 2) };
      throw unknownCommand(token, path, below);
    }
    operands.push(token);
    if (spec?.flagsBeforeOperands) {
      // `castra ssh web -- ls -l` reads as `castra ssh web ls -l`: a `--` right after the operand only separates.
      const rest = argv.slice(i + 1);
      operands.push(...(rest[0] === "--" ? rest.slice(1) : rest));
      break;
    }
  }
  if (!spec) return { kind: "help", path: [] };
  assignOperands(spec, operands, options);
  for (const [key, option] of Object.entries(spec.options)) {
    if (option.kind === "after-double-dash") {
      if (dashAt === 0 && operands.length > 0) options[key] = true;
      else if (operands.length > 0) options[key] = false;
    } else if (option.kind === "negated" && options[key] === undefined) options[key] = true;
    else if (option.kind === "value" && option.required && options[key] === undefined)
      throw usage(`required option '${option.flags}' not specified`, spec.name);
  }
  return { kind: "run", id: BY_PATH.get(spec.name) as CommandId, options, global };
}

function ownFlags(spec: CommandSpec): Flag[] {
  return Object.entries(spec.options).flatMap(([key, option]) => flagOf(key, option) ?? []);
}

/** Reads the flag at `argv[i]` (and its value); returns the index of the last token it used. */
function takeFlag(
  argv: string[],
  i: number,
  flags: Flag[],
  set: (flag: Flag, value: unknown) => void,
  path: string,
): number {
  const token = argv[i] as string;
  if (token.startsWith("--")) {
    const [name = "", inline] = splitOnce(token.slice(2), "=");
    const flag = flags.find((f) => f.long === name);
    if (!flag) throw unknownOption(`--${name}`, flags, path);
    if (!flag.valueName) {
      if (inline !== undefined) throw usage(`option '--${name}' takes no value`, path);
      set(flag, !flag.negated);
      return i;
    }
    const value = inline ?? argv[i + 1];
    if (value === undefined) throw usage(`option '${spelling(flag)}' argument missing`, path);
    set(flag, parseValue(flag, value, path));
    return inline === undefined ? i + 1 : i;
  }
  // Short flags: `-y`, `-yf`, `-n 20`, `-n20`.
  for (let at = 1; at < token.length; at++) {
    const flag = flags.find((f) => f.short === token[at]);
    if (!flag) throw unknownOption(`-${token[at]}`, flags, path);
    if (!flag.valueName) {
      set(flag, true);
      continue;
    }
    const rest = token.slice(at + 1);
    const value = rest || argv[i + 1];
    if (value === undefined) throw usage(`option '${spelling(flag)}' argument missing`, path);
    set(flag, parseValue(flag, value, path));
    return rest ? i : i + 1;
  }
  return i;
}

function parseValue(flag: Flag, value: string, path: string): unknown {
  try {
    return flag.parse ? flag.parse(value) : value;
  } catch (err) {
    if (!(err instanceof BadFlagValue)) throw err;
    throw usage(`option '${spelling(flag)}' argument '${value}' is invalid. ${err.message}`, path);
  }
}

function assignOperands(spec: CommandSpec, operands: string[], options: Record<string, unknown>): void {
  const args = Object.entries(spec.args) as [string, ArgumentSpec][];
  let next = 0;
  for (const [key, arg] of args) {
    if (arg.kind === "operands") {
      if (next < operands.length) options[key] = operands.slice(next);
      next = operands.length;
    } else if (next < operands.length) options[key] = chosen(arg, operands[next++] as string, spec.name);
    else if (arg.required)
      throw usage(`missing required argument '${arg.name.replace(/[<>[\]]/g, "")}'`, spec.name);
  }
  if (next < operands.length) {
    const expected = args.length;
    throw usage(
      `too many arguments for '${spec.name}'. Expected ${expected} argument${expected === 1 ? "" : "s"} but got ${operands.length}.`,
      spec.name,
    );
  }
}

/** An operand with choices (`completion <shell>`) must be one of them. */
function chosen(arg: ArgumentSpec, text: string, path: string): string {
  if (arg.kind !== "operand" || !arg.choices || arg.choices.includes(text)) return text;
  const name = arg.name.replace(/[<>[\]]/g, "");
  const choices = `${arg.choices.slice(0, -1).join(", ")} or ${arg.choices.at(-1)}`;
  throw usage(`argument '${name}' must be ${choices}, not '${text}'`, path);
}

function unknownCommand(token: string, path: string, candidates: CommandSpec[]): UsageError {
  const names = candidates.filter((c) => !c.hidden).map((c) => c.name.split(" ").at(-1) as string);
  const near = closestKey(token, names);
  const help = `see \`${["castra", path].filter(Boolean).join(" ")} --help\``;
  return new UsageError(`unknown command '${token}'`, {
    hint: near ? `did you mean \`${["castra", path, near].filter(Boolean).join(" ")}\`? (${help})` : help,
  });
}

function unknownOption(name: string, flags: Flag[], path: string): UsageError {
  const longs = flags.flatMap((f) => (f.long ? [`--${f.long}`] : []));
  const near = name.startsWith("--") ? closestKey(name, longs) : undefined;
  const help = `see \`${["castra", path].filter(Boolean).join(" ")} --help\``;
  return new UsageError(`unknown option '${name}'`, {
    hint: near ? `did you mean \`${near}\`? (${help})` : help,
  });
}

function usage(message: string, path: string): UsageError {
  return new UsageError(message, { hint: `see \`${["castra", path].filter(Boolean).join(" ")} --help\`` });
}

function spelling(flag: Flag): string {
  const names = [flag.short && `-${flag.short}`, flag.long && `--${flag.long}`].filter(Boolean).join(", ");
  return flag.valueName ? `${names} <${flag.valueName}>` : names;
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}
