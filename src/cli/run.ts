import { CommanderError } from "commander";
import { CastraError, ExitCode, UsageError } from "../errors.js";
import type { VmHost } from "../project/vm-host.js";
import type { IO } from "./io.js";
import { buildProgram, quietUsageErrors, runInvocation } from "./program.js";

export interface CliHost {
  /** The terminal for the chosen command (`--no-color` known by then). */
  makeIO(noColor: boolean): IO;
  /** Aborted on Ctrl-C. */
  signal: AbortSignal;
  /** Set by tests: a fake host for `up` and `down`. */
  vmHost?: VmHost;
  /** `CASTRA_DEBUG=1`: stack traces with errors. */
  debug: boolean;
}

/** Parses `argv`, runs the command and turns every error into its message and exit code: the one place that does. */
export async function runCli(argv: string[], host: CliHost): Promise<number> {
  let io: IO | undefined;
  let exitCode = 0;
  const program = buildProgram(async (invocation) => {
    io = host.makeIO(invocation.global.noColor);
    const { config, skipDiscovery } = invocation.global;
    exitCode = await runInvocation(invocation, {
      io,
      global: { config, skipDiscovery },
      signal: host.signal,
      vmHost: host.vmHost,
    });
  });
  quietUsageErrors(program);
  const out = () => io ?? host.makeIO(argv.includes("--no-color"));

  if (argv.length === 0) {
    out().err.write(program.helpInformation());
    return ExitCode.usage;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0; // --help and --version
      out().error(usageError(err), host.debug);
      return ExitCode.usage;
    }
    if (err instanceof CastraError) {
      out().error(err, host.debug);
      return err.exitCode;
    }
    const message = err instanceof Error ? err.message : String(err);
    out().error(
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
