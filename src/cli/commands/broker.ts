import { rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { startBrokerServer } from "../../broker/server.js";
import { type BrokerState, writeBrokerState } from "../../broker/state.js";
import { LaunchError } from "../../errors.js";
import { projectPaths } from "../../vm/paths.js";
import type { CommandContext } from "../context.js";
import type { BrokerOptions } from "./specs.js";

/**
 * The hidden `castra broker`: the host broker process that `up` starts detached. It prints one
 * timestamped line per event on stdout, which `up` points at .castra/logs/broker.log.
 */
export async function runBroker(opts: BrokerOptions, ctx: CommandContext): Promise<number> {
  const stateDir = join(resolve(ctx.io.cwd, opts.projectDir), ".castra");
  const log = (line: string) => ctx.io.print(`${new Date().toISOString()} ${line}`);
  const { brokerSocket } = projectPaths({ stateDir });
  const state: BrokerState = { pid: process.pid, listeningSince: "", hellos: {} };
  let writes = Promise.resolve();
  // Hellos are recorded one at a time so the state file never goes back in time.
  const record = () => {
    writes = writes.then(() => writeBrokerState(stateDir, state));
    return writes;
  };
  // A socket left by a broker that was killed would make listening fail; it is ours to replace.
  await rm(brokerSocket, { force: true });
  const server = await startBrokerServer({
    socketPath: brokerSocket,
    log,
    onHello: (vm, from) => {
      state.hellos[vm] = { at: new Date().toISOString(), from };
      return record();
    },
  }).catch((err: NodeJS.ErrnoException) => {
    throw new LaunchError(`The host broker cannot listen on ${brokerSocket}`, {
      detail: err.message,
      hint: "check that .castra/run/ is writable, then run `castra up` again",
    });
  });
  state.listeningSince = new Date().toISOString();
  await record();
  log(`listening on ${brokerSocket} (pid ${process.pid})`);

  await new Promise<void>((done) => {
    const stop = (why: string) => {
      log(`stopping (${why})`);
      void server.close().then(done);
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    ctx.signal.addEventListener("abort", () => stop("SIGINT"), { once: true });
  });
  return 0;
}
