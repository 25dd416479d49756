/**
 * Command specs: each command's arguments and flags as data, and the options type its run function receives,
 * derived from that data. A renamed or removed flag changes the type, so every use of it stops compiling.
 * Specs load with every run (help needs them); the command modules they describe load only when chosen.
 */

import type { CommandContext } from "./context.js";

interface Described {
  description: string;
}

/** `--force`: true when given. */
export interface FlagSpec extends Described {
  kind: "flag";
  flags: string;
}
/** `--no-wait`: false when given, true otherwise. */
export interface NegatedFlagSpec extends Described {
  kind: "negated";
  flags: string;
}
/** `--timeout <seconds>`: the parsed value when given. */
export interface ValueSpec<T> extends Described {
  kind: "value";
  flags: string;
  parse: (text: string) => T;
  required?: boolean;
}
/** `-o <option>`, given any number of times: every value, in order. */
export interface ValueListSpec<T> extends Described {
  kind: "values";
  flags: string;
  parse: (text: string) => T;
}
/** True when every operand came after `--` (the CLI cannot tell otherwise: the parser drops `--`). */
export interface AfterDoubleDashSpec {
  kind: "after-double-dash";
}
export type OptionSpec =
  | FlagSpec
  | NegatedFlagSpec
  | ValueSpec<unknown>
  | ValueListSpec<unknown>
  | AfterDoubleDashSpec;

/**
 * `[vm]`: one optional operand; `<config>`: a required one. Shell completion offers `choices` when given,
 * else what the name says (`vm`: the project's VMs; see `cli/completion/candidates.ts`).
 */
export interface OperandSpec extends Described {
  kind: "operand";
  name: string;
  required?: boolean;
  choices?: readonly string[];
}
/** `[command...]`: the remaining operands. */
export interface OperandsSpec extends Described {
  kind: "operands";
  name: string;
}
export type ArgumentSpec = OperandSpec | OperandsSpec;

export interface CommandSpec<
  O extends Record<string, OptionSpec> = Record<string, OptionSpec>,
  A extends Record<string, ArgumentSpec> = Record<string, ArgumentSpec>,
> {
  name: string;
  description: string;
  options: O;
  args: A;
  hidden?: boolean;
  /** Flags only before the first operand: from it on every word is an operand (a remote command's flags). */
  flagsBeforeOperands?: boolean;
  /** Printed after the flags in `--help`. */
  examples?: string[];
}

type OptionValue<S> = S extends FlagSpec
  ? boolean
  : S extends NegatedFlagSpec
    ? boolean
    : S extends ValueSpec<infer T>
      ? T
      : S extends ValueListSpec<infer T>
        ? T[]
        : S extends AfterDoubleDashSpec
          ? boolean
          : never;
type ArgumentValue<S> = S extends OperandsSpec
  ? string[]
  : S extends { choices: readonly (infer C)[] }
    ? C
    : string;
/** Flags, optional values and optional operands may be absent; the rest always have a value. */
type MayBeAbsent<S> = S extends { required: true }
  ? false
  : S extends
        | FlagSpec
        | ValueSpec<unknown>
        | ValueListSpec<unknown>
        | AfterDoubleDashSpec
        | OperandSpec
        | OperandsSpec
    ? true
    : false;

/** The options object a command's run function receives: one key per flag and per argument of its spec. */
export type OptionsOf<S> =
  S extends CommandSpec<infer O, infer A> ? OptionsShape<O> & ArgumentsShape<A> : never;
type OptionsShape<O> = {
  [K in keyof O as MayBeAbsent<O[K]> extends true ? K : never]?: OptionValue<O[K]>;
} & {
  [K in keyof O as MayBeAbsent<O[K]> extends true ? never : K]: OptionValue<O[K]>;
};
type ArgumentsShape<A> = {
  [K in keyof A as MayBeAbsent<A[K]> extends true ? K : never]?: ArgumentValue<A[K]>;
} & { [K in keyof A as MayBeAbsent<A[K]> extends true ? never : K]: ArgumentValue<A[K]> };

/** A command's run function: resolves to its exit code (0 when nothing is returned). */
export type RunCommand<Options> = (opts: Options, ctx: CommandContext) => Promise<number | undefined>;

export function command<
  const O extends Record<string, OptionSpec> = Record<never, OptionSpec>,
  const A extends Record<string, ArgumentSpec> = Record<never, ArgumentSpec>,
>(spec: {
  name: string;
  description: string;
  options?: O;
  args?: A;
  hidden?: boolean;
  flagsBeforeOperands?: boolean;
  examples?: string[];
}): CommandSpec<O, A> {
  return { ...spec, options: spec.options ?? ({} as O), args: spec.args ?? ({} as A) };
}

export const flag = (flags: string, description: string): FlagSpec => ({ kind: "flag", flags, description });

export const negatedFlag = (flags: string, description: string): NegatedFlagSpec => ({
  kind: "negated",
  flags,
  description,
});

export function value(flags: string, description: string): ValueSpec<string>;
export function value<T>(flags: string, description: string, parse: (text: string) => T): ValueSpec<T>;
export function value(
  flags: string,
  description: string,
  parse: (text: string) => unknown = String,
): ValueSpec<unknown> {
  return { kind: "value", flags, description, parse };
}

/** A flag that may be given several times; the options hold every value in order. */
export const values = (flags: string, description: string): ValueListSpec<string> => ({
  kind: "values",
  flags,
  description,
  parse: String,
});

export function requiredValue<T>(
  flags: string,
  description: string,
  parse: (text: string) => T,
): ValueSpec<T> & { required: true } {
  return { kind: "value", flags, description, parse, required: true };
}

export const afterDoubleDash = (): AfterDoubleDashSpec => ({ kind: "after-double-dash" });

export const operand = (name: string, description: string): OperandSpec => ({
  kind: "operand",
  name,
  description,
});

/** A required operand that must be one of `choices` (the parser says which otherwise). */
export const requiredChoice = <const C extends string>(
  name: string,
  description: string,
  choices: readonly C[],
): OperandSpec & { required: true; choices: readonly C[] } => ({
  kind: "operand",
  name,
  description,
  required: true,
  choices,
});

export const requiredOperand = (name: string, description: string): OperandSpec & { required: true } => ({
  kind: "operand",
  name,
  description,
  required: true,
});

export const operands = (name: string, description: string): OperandsSpec => ({
  kind: "operands",
  name,
  description,
});

/** A flag value the user typed wrong; the parser reports it as a usage error (exit 64). */
export class BadFlagValue extends Error {}

export function parseSeconds(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new BadFlagValue("expected a positive number of seconds");
  return n;
}

export function parseSecondsOrZero(text: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0)
    throw new BadFlagValue("expected 0 or a positive number of seconds");
  return n;
}

export function parseCount(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new BadFlagValue("expected a whole number");
  return n;
}

/** A parser that accepts one of `choices`; it carries them, so help and completion can offer them. */
export function parseChoice<const C extends string>(
  choices: readonly C[],
): ((text: string) => C) & { choices: readonly C[] } {
  const parse = (text: string): C => {
    if ((choices as readonly string[]).includes(text)) return text as C;
    const last = choices.at(-1);
    throw new BadFlagValue(`expected ${choices.slice(0, -1).join(", ")} or ${last}`);
  };
  return Object.assign(parse, { choices });
}
