import { ExitCode } from "../errors.js";
import { type ResponderConfig, readResponderConfig } from "./config.js";
import { serveConnection, serveUnavailable } from "./responder.js";

/**
 * `castra __metadata <config>`: QEMU's guestfwd runs it once per guest connection with the connection as
 * stdin, stdout and stderr. Nothing may be printed: any stderr output would reach the guest.
 */
export async function runMetadataResponder(configPath: string): Promise<number> {
  let config: ResponderConfig;
  try {
    config = await readResponderConfig(configPath);
  } catch {
    // Without a configuration there is no log either; the guest at least learns the service is broken.
    await serveUnavailable(
      process.stdin,
      process.stdout,
      "castra metadata service: configuration unreadable",
    );
    return ExitCode.software;
  }
  await serveConnection(process.stdin, process.stdout, config);
  return ExitCode.ok;
}
