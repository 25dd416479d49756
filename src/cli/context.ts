import type { VmHost } from "../project/vm-host.js";
import type { IO } from "./io.js";

/** Flags every command accepts. */
export interface GlobalOptions {
  /** `-c/--config PATH`: use this file, no discovery. */
  config?: string;
  /** `--skip-discovery`: do not look for castra.toml in parent directories. */
  skipDiscovery: boolean;
}

/** What every command's run function receives besides its own options. */
export interface CommandContext {
  io: IO;
  global: GlobalOptions;
  /** Aborted on Ctrl-C; commands stop what they started and throw InterruptedError. */
  signal: AbortSignal;
  /** What `up` and `down` do to the host; tests give a fake. Unset: the real one, loaded when needed. */
  vmHost?: VmHost;
}
