import type { Project } from "../config/model.js";
import { LaunchError } from "../errors.js";
import type { GuestSession } from "../vm/guest-session.js";
import type { LiveVm, ProjectEvent } from "./events.js";
import type { VmHost } from "./vm-host.js";

interface ShareOptions {
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  onEvent: (event: ProjectEvent) => void;
}

/**
 * Runs `save` (QEMU saving the guest's memory: suspend, a live snapshot) with the VM's shares unmounted in the
 * guest, since QEMU refuses to save a guest with a 9p share mounted. A share in use is exit 70 and nothing is
 * saved. Afterwards (or when the save fails) the shares are mounted again while the guest still runs; a saved
 * state therefore never holds a mounted share, and whatever restores it mounts them (`up`, snapshot restore).
 */
export async function withSharesReleased<T>(
  project: Project,
  host: VmHost,
  live: LiveVm,
  options: ShareOptions,
  save: () => Promise<T>,
  guestRunsOn: boolean,
): Promise<T> {
  if ((live.vm.mounts ?? []).length === 0) return save();
  const session = guestSession(project, live, options);
  const outcomes = await host.unmountShares(session);
  // A guest castra cannot log into has nothing castra mounted; QEMU itself names a share mounted by hand.
  const busy = outcomes.flatMap((o) => (o.state === "failed" && !o.unreachable ? [o] : []));
  if (busy.length > 0) {
    await host.mountShares(session);
    const name = live.vm.name;
    throw new LaunchError(
      `vm ${name}: ${busy.map((o) => o.guest).join(", ")} cannot be unmounted in the guest`,
      {
        detail: [
          ...busy.map((o) => `${o.guest}: ${o.reason}`),
          "QEMU saves a guest's memory only with its shares unmounted: nothing was saved, the VM keeps running.",
        ].join("\n"),
        hint: `leave ${busy[0]?.guest} in the guest's shells and stop what runs from it, then try again (or \`castra down ${name}\`)`,
      },
    );
  }
  let saved: T;
  try {
    saved = await save();
  } catch (err) {
    await host.mountShares(session).catch(() => undefined);
    throw err;
  }
  if (guestRunsOn) await remountShares(project, host, live, options);
  return saved;
}

/** Mounts the VM's shares again in a guest that runs on from a saved state, reporting as `up` does. */
export async function remountShares(
  project: Project,
  host: VmHost,
  live: LiveVm,
  options: ShareOptions,
): Promise<void> {
  if ((live.vm.mounts ?? []).length === 0) return;
  for (const o of await host.mountShares(guestSession(project, live, options)))
    if (o.state === "failed")
      options.onEvent({
        type: "share-failed",
        vm: live.vm.name,
        tag: o.tag,
        guest: o.guest,
        reason: o.reason,
        manual: o.manual,
      });
}

function guestSession(project: Project, live: LiveVm, options: ShareOptions): GuestSession {
  return { project, vm: live.vm, record: live.record, env: options.env, signal: options.signal };
}
