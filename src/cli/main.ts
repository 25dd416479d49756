#!/usr/bin/env node
import type { CommanderError } from "commander";
import { CastraError, ExitCode, UsageError } from "../errors.js";
import { type IO, processIO } from "./io.js";
import { VERSION } from "./version.js";

/** The only place that turns errors into exit codes. */
async function main(argv: string[]): Promise<number> {
  // Whatever the user's umask, nothing castra (or QEMU under it) creates is writable by group or others.
  process.umask(process.umask(0o022) | 0o022);
  // Answered before commander and the command table load: these cost little more than starting node.
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (argv.length === 2 && argv[0] === "__metadata") {
    const { runMetadataResponder } = await import("../metadata/command.js");
    return runMetadataResponder(argv[1] as string);
  }
  const [{ CommanderError }, { buildProgram, quietUsageErrors, runInvocation }] = await Promise.all([
    import("commander"),
    import("./program.js"),
  ]);
  const controller = new AbortController();
  let io: IO | undefined;
  let exitCode = 0;
  let interrupts = 0;
  process.on("SIGINT", () => {
    interrupts += 1;
    // A second Ctrl-C means the user does not want to wait for a clean stop.
    if (interrupts > 1) process.exit(ExitCode.interrupted);
    controller.abort();
  });

  const program = buildProgram(async (invocation) => {
    io = processIO(invocation.global.noColor);
    const { config, skipDiscovery } = invocation.global;
    exitCode = await runInvocation(invocation, {
      io,
      global: { config, skipDiscovery },
      signal: controller.signal,
    });
  });
  quietUsageErrors(program);

  if (argv.length === 0) {
    process.stderr.write(program.helpInformation());
    return ExitCode.usage;
  }

  try {
    await program.parseAsync(argv, { from: "user" });
    return exitCode;
  } catch (err) {
    const out = io ?? processIO(argv.includes("--no-color"));
    const debug = process.env.CASTRA_DEBUG === "1";
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0; // --help and --version
      out.error(usageError(err), debug);
      return ExitCode.usage;
    }
    if (err instanceof CastraError) {
      out.error(err, debug);
      return err.exitCode;
    }
    const message = err instanceof Error ? err.message : String(err);
    out.error(
      new CastraError("castra failed unexpectedly", ExitCode.software, {
        detail: message,
        hint: "run again with CASTRA_DEBUG=1 and report the output at the castra issue tracker",
        cause: err,
      }),
      true,
    );
    return ExitCode.software;
  }
}

function usageError(err: CommanderError & { commandPath?: string }): UsageError {
  // Commander's message reads "error: unknown command 'upp'\n(Did you mean up?)".
  const [first = err.message, ...rest] = err.message.replace(/^error: /, "").split("\n");
  const suggestion = rest.join(" ").match(/Did you mean (.+)\?/)?.[1];
  const path = err.commandPath ?? "castra";
  const help = `see \`${path} --help\``;
  if (!suggestion) return new UsageError(first, { hint: help });
  const candidate = suggestion.startsWith("-") ? suggestion : `${path} ${suggestion}`;
  return new UsageError(first, { hint: `did you mean \`${candidate}\`? (${help})` });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`castra: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = ExitCode.software;
  },
);
