import { COMMANDS } from "./commands/specs.js";
import { childrenOf, GLOBAL_OPTIONS } from "./parse.js";
import type { CommandSpec, OptionSpec } from "./spec.js";

const WIDTH = 80;
const HELP_ROW: [string, string] = ["-h, --help", "show help"];

/** `castra --help`, or the help of the command at `path` (`["images", "pull"]`); undefined for no such command. */
export function helpText(path: string[]): string | undefined {
  if (path.length === 0) return programHelp();
  const spec = Object.values(COMMANDS).find((c: CommandSpec) => c.name === path.join(" "));
  return spec ? commandHelp(spec) : undefined;
}

function programHelp(): string {
  const commands = childrenOf("")
    .filter((c) => !c.hidden)
    .map((c): [string, string] => [`${c.name}${usageTail(c)}`, c.description]);
  return [
    "Usage: castra [options] [command]",
    "",
    "Run QEMU virtual machines for a project directory.",
    "",
    "Options:",
    ...rows([["-V, --version", "print the version"], ...optionRows(GLOBAL_OPTIONS), HELP_ROW]),
    "",
    "Commands:",
    ...rows([...commands, ["help [command]", "show help for a command"]]),
    "",
    "In an empty directory, `castra up` boots a managed Alpine VM with no configuration.",
    "Run `castra <command> --help` for a command's flags.",
    "",
  ].join("\n");
}

function commandHelp(spec: CommandSpec): string {
  const subcommands = childrenOf(spec.name).filter((c) => !c.hidden);
  const lines = [`Usage: castra ${spec.name}${usageTail(spec)}`, "", spec.description];
  const args = Object.values(spec.args).map((a): [string, string] => [
    a.name.replace(/[<>[\]]/g, ""),
    a.description,
  ]);
  if (args.length > 0) lines.push("", "Arguments:", ...rows(args));
  lines.push("", "Options:", ...rows([...optionRows(spec.options), HELP_ROW]));
  if (subcommands.length > 0) {
    const listed = subcommands.map((c): [string, string] => [
      `${c.name.split(" ").at(-1)}${usageTail(c)}`,
      c.description,
    ]);
    lines.push("", "Commands:", ...rows(listed));
  }
  if (spec.examples) lines.push("", "Examples:", ...spec.examples.map((e) => `  ${e}`));
  return `${lines.join("\n")}\n`;
}

/** `[options] [vm] [command...]` after a command's name. */
function usageTail(spec: CommandSpec): string {
  const hasFlags = Object.values(spec.options).some((o) => o.kind !== "after-double-dash");
  const parts = [
    ...(hasFlags ? ["[options]"] : []),
    ...(childrenOf(spec.name).length > 0 ? ["[command]"] : []),
    ...Object.values(spec.args).map((a) => a.name),
  ];
  return parts.length > 0 ? ` ${parts.join(" ")}` : "";
}

function optionRows(options: Record<string, OptionSpec>): [string, string][] {
  return Object.values(options).flatMap((o) =>
    o.kind === "after-double-dash" ? [] : [[o.flags, o.description]],
  );
}

/** Two columns: the term padded to the widest, the description wrapped to the terminal's 80 columns. */
function rows(entries: [string, string][]): string[] {
  const termWidth = Math.max(...entries.map(([term]) => term.length));
  const indent = 2 + termWidth + 2;
  return entries.flatMap(([term, description]) => {
    const wrapped = wrap(description, Math.max(20, WIDTH - indent));
    return wrapped.map((line, i) =>
      i === 0 ? `  ${term.padEnd(termWidth)}  ${line}` : `${" ".repeat(indent)}${line}`,
    );
  });
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}
