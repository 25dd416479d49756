import { CastraError, ExitCode } from "../errors.js";
import type { VmHost } from "../project/vm-host.js";
import { helpText } from "./help.js";
import type { IO } from "./io.js";
import { parseCommandLine } from "./parse.js";
import { type Invocation, runInvocation } from "./program.js";
import { VERSION } from "./version.js";

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
  let io = host.makeIO(argv.includes("--no-color"));
  try {
    const line = parseCommandLine(argv);
    if (line.kind === "version") {
      io.out.write(`${VERSION}\n`);
      return 0;
    }
    if (line.kind === "help") {
      const text = helpText(line.path);
      if (text === undefined) throw parseUnknownHelp(line.path);
      // Bare `castra` asked nothing: the help goes to stderr and the exit says it was a usage error.
      if (argv.length === 0) {
        io.err.write(text);
        return ExitCode.usage;
      }
      io.out.write(text);
      return 0;
    }
    io = host.makeIO(line.global.noColor);
    const { config, skipDiscovery } = line.global;
    return await runInvocation(line as unknown as Invocation, {
      io,
      global: { config, skipDiscovery },
      signal: host.signal,
      vmHost: host.vmHost,
    });
  } catch (err) {
    if (err instanceof CastraError) {
      io.error(err, host.debug);
      return err.exitCode;
    }
    const message = err instanceof Error ? err.message : String(err);
    io.error(
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

/** `castra help nothing`: the same usage error as `castra nothing`. */
function parseUnknownHelp(path: string[]): Error {
  try {
    parseCommandLine(path);
  } catch (err) {
    return err as Error;
  }
  return new Error(`no help for ${path.join(" ")}`);
}
