import { Command, InvalidArgumentError, Option } from "commander";
import { COMMANDS, type CommandId } from "./commands/specs.js";
import type { CommandContext } from "./context.js";
import type { CommandSpec, OptionSpec, OptionsOf, RunCommand } from "./spec.js";
import { BadFlagValue } from "./spec.js";
import { VERSION } from "./version.js";

/** The global flags every command accepts. */
export interface GlobalFlags {
  config?: string;
  skipDiscovery: boolean;
  noColor: boolean;
}

/** What the parsed command line asks for: one command, its typed options and the global flags. */
export interface Invocation<Id extends CommandId = CommandId> {
  id: Id;
  options: OptionsOf<(typeof COMMANDS)[Id]>;
  global: GlobalFlags;
}

/** Runs a chosen command; `main` loads its module, tests record the invocation. */
export type Dispatch = (invocation: Invocation) => Promise<void>;

/** Commander's own unknown-command error (not in its type declarations). */
interface Commander {
  unknownCommand(): never;
}

/**
 * Declares every command of `specs.ts` with its flags and help. Nothing is loaded here: the chosen command
 * reaches `dispatch` with options shaped exactly as its spec says.
 */
export function buildProgram(dispatch: Dispatch): Command {
  const program = new Command("castra")
    .description("Run QEMU virtual machines for a project directory.")
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .option("-c, --config <path>", "use this castra.toml (no discovery)")
    .option("--skip-discovery", "only look for castra.toml in the current directory")
    .option("--no-color", "never colour the output")
    .showSuggestionAfterError(true)
    .addHelpText(
      "after",
      "\nIn an empty directory, `castra up` boots a managed Alpine VM with no configuration.\n" +
        "Run `castra <command> --help` for a command's flags.",
    );
  const declared = new Map<string, Command>([["", program]]);
  for (const [id, spec] of Object.entries(COMMANDS) as [CommandId, CommandSpec][]) {
    const path = spec.name.split(" ");
    const parent = declared.get(path.slice(0, -1).join(" ")) ?? program;
    declared.set(spec.name, declare(parent, path.at(-1) ?? spec.name, id, spec, dispatch));
  }
  return program;
}

function declare(
  parent: Command,
  name: string,
  id: CommandId,
  spec: CommandSpec,
  dispatch: Dispatch,
): Command {
  const cmd = parent
    .command(name, { hidden: spec.hidden })
    .description(spec.description)
    .helpOption("-h, --help", "show help");
  const keys: { key: string; attribute?: string; spec: OptionSpec }[] = [];
  for (const [key, option] of Object.entries(spec.options)) {
    if (option.kind === "after-double-dash") {
      keys.push({ key, spec: option });
      continue;
    }
    const declaredOption = new Option(option.flags, option.description);
    if (option.kind === "value") {
      declaredOption.argParser(userParser(option.parse));
      if (option.required) declaredOption.makeOptionMandatory();
    }
    cmd.addOption(declaredOption);
    keys.push({ key, attribute: declaredOption.attributeName(), spec: option });
  }
  for (const arg of Object.values(spec.args)) cmd.argument(arg.name, arg.description);
  if (spec.examples)
    cmd.addHelpText("after", `\nExamples:\n${spec.examples.map((e) => `  ${e}`).join("\n")}`);

  cmd.action(async (...params: unknown[]) => {
    // Commander passes declared arguments, then options, then the command itself.
    const self = params.at(-1) as Command;
    // A command group given an operand it does not know (`castra images pul`): an unknown command, with a suggestion.
    if (self.commands.length > 0 && self.args.length > 0) (self as unknown as Commander).unknownCommand();
    const given = self.opts();
    const options: Record<string, unknown> = {};
    for (const { key, attribute } of keys) {
      const value = attribute === undefined ? allAfterDoubleDash(self) : given[attribute];
      if (value !== undefined) options[key] = value;
    }
    Object.keys(spec.args).forEach((key, i) => {
      if (self.processedArgs[i] !== undefined) options[key] = self.processedArgs[i];
    });
    const g = self.optsWithGlobals() as { config?: string; skipDiscovery?: boolean; color?: boolean };
    const global = { config: g.config, skipDiscovery: Boolean(g.skipDiscovery), noColor: g.color === false };
    await dispatch({ id, options, global } as Invocation);
  });
  // A group alone runs its default; extra operands are then checked above.
  if (Object.values(COMMANDS).some((other) => other.name.startsWith(`${spec.name} `)))
    cmd.allowExcessArguments(true);
  return cmd;
}

/** Commander throws instead of exiting, and main prints its usage errors in castra's format. */
export function quietUsageErrors(cmd: Command, path = "castra"): void {
  cmd.exitOverride((err) => {
    throw Object.assign(err, { commandPath: path });
  });
  cmd.configureOutput({ outputError: () => {} });
  for (const sub of cmd.commands) quietUsageErrors(sub, `${path} ${sub.name()}`);
}

/** A flag parser's complaint becomes commander's, so main reports it as a usage error (exit 64). */
function userParser<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (err) {
      if (err instanceof BadFlagValue) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}

/** Commander drops `--`: whether every operand followed it (`castra ssh -- ls` names no VM). */
function allAfterDoubleDash(self: Command): boolean {
  // rawArgs (the argv given to parse) is untyped but public in commander's JavaScript API.
  let root: Command = self;
  while (root.parent) root = root.parent;
  const raw = (root as { rawArgs?: string[] }).rawArgs ?? [];
  const dash = raw.indexOf("--");
  return dash >= 0 && raw.length - dash - 1 === self.args.length;
}

/** The module that runs each command, loaded only when that command is chosen. */
export const LOADERS: { [Id in CommandId]: () => Promise<RunCommand<OptionsOf<(typeof COMMANDS)[Id]>>> } = {
  init: async () => (await import("./commands/init.js")).runInit,
  ports: async () => (await import("./commands/ports.js")).runPorts,
  up: async () => (await import("./commands/up.js")).runUp,
  down: async () => (await import("./commands/down.js")).runDown,
  status: async () => (await import("./commands/status.js")).runStatus,
  logs: async () => (await import("./commands/logs.js")).runLogs,
  ssh: async () => (await import("./commands/ssh.js")).runSsh,
  images: async () => {
    const { runImagesList } = await import("./commands/images.js");
    return (_opts, ctx) => runImagesList({ cache: undefined }, ctx);
  },
  imagesPull: async () => (await import("./commands/images.js")).runImagesPull,
  imagesList: async () => (await import("./commands/images.js")).runImagesList,
  imagesVerify: async () => (await import("./commands/images.js")).runImagesVerify,
  imagesPrune: async () => (await import("./commands/images.js")).runImagesPrune,
  broker: async () => (await import("./commands/broker.js")).runBroker,
  metadata: async () => {
    const { runMetadataResponder } = await import("../metadata/command.js");
    return (opts) => runMetadataResponder(opts.config);
  },
};

/** Loads the chosen command's module and runs it; resolves to its exit code. */
export async function runInvocation<Id extends CommandId>(
  invocation: Invocation<Id>,
  ctx: CommandContext,
): Promise<number> {
  const load = LOADERS[invocation.id] as () => Promise<RunCommand<OptionsOf<(typeof COMMANDS)[Id]>>>;
  const run = await load();
  return (await run(invocation.options, ctx)) ?? 0;
}
