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

/** Commander's own unknown-command error (not in its type declarations). */
interface Commander {
  unknownCommand(): never;
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

  const define = (
    name: string,
    description: string,
    load: () => Promise<RunCommand>,
    hidden = false,
    parent: Command = program,
  ): Command =>
    parent
      .command(name, { hidden })
      .description(description)
      .helpOption("-h, --help", "show help")
      .action(async (...params: unknown[]) => {
        // Commander passes declared arguments, then options, then the command; arguments join the options.
        const self = params.at(-1) as Command;
        // A command group given an operand it does not know (`castra images pul`): an unknown command, with a suggestion.
        if (self.commands.length > 0 && self.args.length > 0) (self as unknown as Commander).unknownCommand();
        const opts = {
          ...self.opts(),
          ...Object.fromEntries(
            self.registeredArguments.map((arg, i) => [arg.name(), self.processedArgs[i]]),
          ),
        };
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

  define(
    "init",
    "write a starter castra.toml and .castra/",
    async () => (await import("./commands/init.js")).runInit,
  )
    .option("--force", "overwrite an existing castra.toml")
    .option("--project-name <name>", "project name (default: the directory name)")
    .option(
      "-o, --output <path>",
      "a directory for castra.toml, or a file path ending in .toml (default: .)",
    );

  define(
    "ports",
    "show declared port forwards and conflicts",
    async () => (await import("./commands/ports.js")).runPorts,
  ).option("--verbose", "also show the project, its config file and the broker reservation");

  define(
    "up",
    "start every VM of the project and wait until each is ready",
    async () => (await import("./commands/up.js")).runUp,
  )
    .option("--no-wait", "return once QEMU runs, without waiting for the guests to be ready")
    .option("--timeout <seconds>", "how long to wait for the guests to be ready (default: 300)", parseSeconds)
    .option(
      "--accel <mode>",
      "kvm, tcg or auto (default: $CASTRA_ACCEL, else auto: KVM when usable)",
      (value: string) => {
        if (!["auto", "kvm", "tcg"].includes(value))
          throw new InvalidArgumentError("expected auto, kvm or tcg");
        return value;
      },
    )
    .option("--force", "start even when the CPU, memory, disk or port checks fail (as warnings)")
    .option("--offline", "never download: use only managed images already cached");

  define(
    "down",
    "power off every VM (ACPI, then SIGTERM, then SIGKILL)",
    async () => (await import("./commands/down.js")).runDown,
  ).option(
    "--timeout <seconds>",
    "how long a guest gets to power off before SIGTERM (default: 60)",
    parseSeconds,
  );

  define(
    "status",
    "show each VM's state, resources, uptime, broker and forwards",
    async () => (await import("./commands/status.js")).runStatus,
  ).option("--json", "print a JSON document instead of the table");

  define(
    "logs",
    "show the broker, image-manager, QEMU and serial logs, merged by time",
    async () => (await import("./commands/logs.js")).runLogs,
  )
    .option("-n, --tail <lines>", "lines to show from the end of each log (default: 1000)", parseCount)
    .option("-f, --follow", "keep streaming new lines until Ctrl-C");

  define(
    "ssh",
    "log into a running VM with the project's SSH key, or run COMMAND there",
    async () => (await import("./commands/ssh.js")).runSsh,
  )
    .argument("[vm]", "the VM (default: the project's only VM)")
    .argument("[command...]", "a command to run instead of a login shell; put it after --")
    .addHelpText("after", "\nExamples:\n  castra ssh\n  castra ssh devbox\n  castra ssh -- uname -a")
    // Commander drops `--`: when every operand followed it (`castra ssh -- ls`), the first is no VM name.
    .hook("preAction", (self) => {
      // rawArgs (the argv given to parse) is untyped but public in commander's JavaScript API.
      const raw = (self.parent as { rawArgs?: string[] } | null)?.rawArgs ?? [];
      const dash = raw.indexOf("--");
      self.setOptionValue("commandOnly", dash >= 0 && raw.length - dash - 1 === self.args.length);
    });

  // `castra images` alone lists the cache; its subcommands fill, check and trim it.
  const images = define(
    "images",
    "pull, list, verify or prune the managed images cached in .castra/images",
    async () => (await import("./commands/images.js")).runImagesList,
  ).allowExcessArguments(true);
  define(
    "pull",
    "download and prepare a managed image without booting (default: the ones the project uses)",
    async () => (await import("./commands/images.js")).runImagesPull,
    false,
    images,
  )
    .argument("[image]", "ID@VERSION, e.g. alpine-minimal@v1")
    .option("--offline", "never download: succeed only when the image is already cached");
  define(
    "list",
    "show cached images with their files, sizes and dates",
    async () => (await import("./commands/images.js")).runImagesList,
    false,
    images,
  ).option("--cache", "show the per-user download cache instead: blobs, sizes, last use, URL");
  define(
    "verify",
    "re-hash every cached file against its manifest (exit 65 on a mismatch)",
    async () => (await import("./commands/images.js")).runImagesVerify,
    false,
    images,
  ).option("--cache", "re-hash the per-user download cache instead (exit 65 naming each damaged blob)");
  define(
    "prune",
    "remove cached images that no VM of this project uses",
    async () => (await import("./commands/images.js")).runImagesPrune,
    false,
    images,
  )
    .option("-y, --yes", "remove without asking")
    .option("--cache", "prune the per-user download cache instead: blobs no catalog entry uses")
    .option("--older-than <days>", "with --cache, also blobs unused for more than DAYS days", parseCount);

  // Started detached by `castra up` when castra.toml has a [broker] table; not for people.
  define(
    "broker",
    "run the host broker in the foreground",
    async () => (await import("./commands/broker.js")).runBroker,
    true,
  )
    .requiredOption("--project-dir <dir>", "the project directory (its .castra/ holds the broker state)")
    .requiredOption("--port <port>", "TCP port on 127.0.0.1", (value: string) => {
      const port = Number(value);
      if (!Number.isInteger(port) || port < 1 || port > 65535)
        throw new InvalidArgumentError("expected a port 1-65535");
      return port;
    });

  // QEMU runs this once per guest connection to 169.254.169.254; hidden, and no IO: stderr reaches the guest.
  program
    .command("__metadata <config>", { hidden: true })
    .description("answer one guest instance-metadata request on stdin/stdout")
    .action(async (configPath: string) => {
      const { runMetadataResponder } = await import("../metadata/command.js");
      host.finished(await runMetadataResponder(configPath));
    });

  return program;
}
