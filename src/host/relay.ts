import { connect } from "node:net";

/**
 * Pipes this process's stdin and stdout (one guest connection, as QEMU's `guestfwd` hands it over) to the unix
 * socket at `path` until either side closes. Prints nothing: stderr would reach the guest too.
 */
export function relayToSocket(path: string): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.on("connect", () => {
      process.stdin.pipe(socket);
      socket.pipe(process.stdout);
    });
    // No listener (the broker is not up yet) or a reset: the guest sees its connection close, and retries.
    socket.on("error", () => {});
    socket.on("close", (failed) => {
      process.stdin.destroy();
      resolve(failed ? 69 : 0);
    });
  });
}
