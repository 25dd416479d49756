import type { COMMANDS, CommandId } from "./commands/specs.js";
import type { CommandContext } from "./context.js";
import type { GlobalFlags } from "./parse.js";
import type { OptionsOf, RunCommand } from "./spec.js";

/** What the parsed command line asks for: one command, its typed options and the global flags. */
export interface Invocation<Id extends CommandId = CommandId> {
  id: Id;
  options: OptionsOf<(typeof COMMANDS)[Id]>;
  global: GlobalFlags;
}

/** The module that runs each command, loaded only when that command is chosen. */
export const LOADERS: { [Id in CommandId]: () => Promise<RunCommand<OptionsOf<(typeof COMMANDS)[Id]>>> } = {
  init: async () => (await import("./commands/init.js")).runInit,
  ports: async () => (await import("./commands/ports.js")).runPorts,
  up: async () => (await import("./commands/up.js")).runUp,
  down: async () => (await import("./commands/down.js")).runDown,
  status: async () => (await import("./commands/status.js")).runStatus,
  logs: async () => (await import("./commands/logs.js")).runLogs,
  list: async () => (await import("./commands/list.js")).runList,
  ssh: async () => (await import("./commands/ssh.js")).runSsh,
  sshConfig: async () => (await import("./commands/ssh-config.js")).runSshConfig,
  provision: async () => (await import("./commands/provision.js")).runProvision,
  suspend: async () => (await import("./commands/suspend.js")).runSuspend,
  destroy: async () => (await import("./commands/destroy.js")).runDestroy,
  snapshot: async () => {
    const { runSnapshotList } = await import("./commands/snapshot.js");
    return (_opts, ctx) => runSnapshotList({}, ctx);
  },
  snapshotSave: async () => (await import("./commands/snapshot.js")).runSnapshotSave,
  snapshotRestore: async () => (await import("./commands/snapshot.js")).runSnapshotRestore,
  snapshotList: async () => (await import("./commands/snapshot.js")).runSnapshotList,
  snapshotDelete: async () => (await import("./commands/snapshot.js")).runSnapshotDelete,
  images: async () => {
    const { runImagesList } = await import("./commands/images.js");
    return (_opts, ctx) => runImagesList({ cache: undefined }, ctx);
  },
  imagesPull: async () => (await import("./commands/images.js")).runImagesPull,
  imagesList: async () => (await import("./commands/images.js")).runImagesList,
  imagesVerify: async () => (await import("./commands/images.js")).runImagesVerify,
  imagesPrune: async () => (await import("./commands/images.js")).runImagesPrune,
  doctor: async () => (await import("./commands/doctor.js")).runDoctor,
  completion: async () => (await import("./commands/completion.js")).runCompletion,
  broker: async () => (await import("./commands/broker.js")).runBroker,
  metadata: async () => {
    const { runMetadataServer } = await import("../metadata/daemon.js");
    return (opts) => runMetadataServer(opts.config);
  },
  complete: async () => (await import("./completion/complete.js")).runComplete,
};

/** Loads the chosen command's module and runs it; resolves to its exit code. */
export async function runInvocation<Id extends CommandId>(
  invocation: Invocation<Id>,
  ctx: CommandContext,
): Promise<number> {
  const load = LOADERS[invocation.id] as () => Promise<RunCommand<OptionsOf<(typeof COMMANDS)[Id]>>>;
  const run = await load();
  return (await run(invocation.options, ctx)) ?? 0;
}
