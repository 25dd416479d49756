import { ExitCode } from "../errors.js";
import { makeCreatedFilesPrivate } from "../host/umask.js";
import { processIO } from "./io.js";
import { VERSION } from "./version.js";

async function main(argv: string[]): Promise<number> {
  makeCreatedFilesPrivate();
  // Answered before the command table loads: these cost little more than starting node (the metadata server
  // starts while its VM's QEMU does).
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (argv.length === 2 && argv[0] === "__metadata-server") {
    const { runMetadataServer } = await import("../metadata/daemon.js");
    return runMetadataServer(argv[1] as string);
  }
  const controller = new AbortController();
  let interrupts = 0;
  process.on("SIGINT", () => {
    interrupts += 1;
    // A second Ctrl-C means the user does not want to wait for a clean stop.
    if (interrupts > 1) process.exit(ExitCode.interrupted);
    controller.abort();
  });
  const { runCli } = await import("./run.js");
  return runCli(argv, {
    makeIO: processIO,
    signal: controller.signal,
    debug: process.env.CASTRA_DEBUG === "1",
  });
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
