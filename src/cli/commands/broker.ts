import { join, resolve } from "node:path";
import { startBrokerServer } from "../../broker/server.js";
import { type BrokerState, writeBrokerState } from "../../broker/state.js";
import { LaunchError } from "../../errors.js";
import type { CommandContext } from "../context.js";
import type { BrokerOptions } from "./specs.js";

/**
 * The hidden `castra broker`: the host broker process that `up` starts detached. It prints one
 * timestamped line per event on stdout, which `up` points at .castra/logs/broker.log.
 */
export async function runBroker(opts: BrokerOptions, ctx: CommandContext): Promise<number> {
  const stateDir = join(resolve(ctx.io.cwd, opts.projectDir), ".castra");
  const log = (line: string) => ctx.io.print(`${new Date().toISOString()} ${line}`);
  const state: BrokerState = { pid: process.pid, port: opts.port, listeningSince: "", hellos: {} };
  let writes = Promise.resolve();
  // Hellos are recorded one at a time so the state file never goes back in time.
  const record = () => {
    writes = writes.then(() => writeBrokerState(stateDir, state));
    return writes;
  };
  const server = await startBrokerServer({
    port: opts.port,
    log,
    onHello: (vm, from) => {
      state.hellos[vm] = { at: new Date().toISOString(), from };
      return record();
    },
  }).catch((err: NodeJS.ErrnoException) => {
    throw new LaunchError(`The host broker cannot listen on 127.0.0.1:${opts.port}`, {
      detail: err.message,
      hint: "free the port or change [broker] port in castra.toml, then run `castra up` again",
    });
  });
  state.listeningSince = new Date().toISOString();
  await record();
  log(`listening on 127.0.0.1:${opts.port} (pid ${process.pid})`);

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
