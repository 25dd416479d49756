import { Command, InvalidArgumentError } from "commander";
import type { CommandContext } from "./context.js";
import type { IO } from "./io.js";
import { VERSION } from "./version.js";

/** A command's run function; resolves to its exit code (0 when nothing is returned). */
// biome-ignore lint/suspicious/noExplicitAny: each command declares its own options type
export type RunCommand = (opts: any, ctx: CommandContext) => Promise<number | undefined>;

export interface ProgramHost {
  makeIO(noColor: boolean): IO;
  signal: AbortSignal;
  /** Receives the IO the chosen command used, so main reports errors through it. */
  started(io: IO): void;
  finished(exitCode: number): void;
}

export function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("expected a positive number of seconds");
  return n;
}

export function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("expected a whole number");
  return n;
}

/**
 * Declares every command with its flags and help. An action imports its module only when chosen,
 * so `castra --version` and `castra --help` load nothing else.
 */
export function buildProgram(host: ProgramHost): Command {
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

  const define = (name: string, description: string, load: () => Promise<RunCommand>): Command =>
    program
      .command(name)
      .description(description)
      .helpOption("-h, --help", "show help")
      .action(async (opts: Record<string, unknown>, self: Command) => {
        const g = self.optsWithGlobals() as { config?: string; skipDiscovery?: boolean; color?: boolean };
        const io = host.makeIO(g.color === false);
        host.started(io);
        const run = await load();
        const ctx: CommandContext = {
          io,
          global: { config: g.config, skipDiscovery: Boolean(g.skipDiscovery) },
          signal: host.signal,
        };
        host.finished((await run(opts, ctx)) ?? 0);
      });

  define("init", "write a starter castra.toml and .castra/", async () => (await import("./commands/init.js")).runInit)
    .option("--force", "overwrite an existing castra.toml")
    .option("--project-name <name>", "project name (default: the directory name)")
    .option("-o, --output <path>", "where to write castra.toml (default: ./castra.toml)");

  define("ports", "show declared port forwards and conflicts", async () => (await import("./commands/ports.js")).runPorts)
    .option("--verbose", "also show guest ports, addresses and the broker reservation");

  return program;
}
