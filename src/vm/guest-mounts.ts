import { realpath, rm, stat } from "node:fs/promises";
import { isAbsolute, relative, sep } from "node:path";
import { displayPath } from "../config/load.js";
import type { MountConfig, Project, VmConfig } from "../config/model.js";
import { DataError, fsError, InputMissingError } from "../errors.js";
import { writeJsonAtomic } from "../host/files.js";
import type { MountsRecord } from "./guest-records.js";
import { type GuestSession, loginFailure, runInGuest, unreachableReason } from "./guest-session.js";
import { mountsRecordPath } from "./paths.js";
import { GUEST_MOUNT_OPTIONS, manualMountLine, shareTag } from "./shares.js";

/** One share as the guest gets it: its tag, where it goes, and what of it castra hides there. */
export interface ShareSpec {
  index: number;
  tag: string;
  mount: MountConfig;
  /** `.castra/` relative to the mount (posix), when the share contains it: covered in the guest. */
  hide?: string;
}

/** One share after castra worked on it in the guest; `index` is its place in the VM's mounts. */
export type ShareOutcome =
  | { index: number; tag: string; guest: string; state: "mounted" | "already" }
  | {
      index: number;
      tag: string;
      guest: string;
      state: "failed";
      reason: string;
      manual: string;
      /** castra could not log into the guest at all (so it mounted nothing there either). */
      unreachable?: boolean;
    };

/**
 * Before anything starts: every mount's host directory exists (else exit 66), and none is `.castra/` or
 * inside it (exit 65): castra's own state is never handed to a guest as a share.
 */
export async function checkMounts(project: Project, vm: VmConfig): Promise<void> {
  await shareSpecs(project, vm);
}

/** The VM's shares with what each must hide; throws the configuration's mistakes (65, 66). */
export async function shareSpecs(project: Project, vm: VmConfig): Promise<ShareSpec[]> {
  const state = await realpath(project.stateDir).catch(() => project.stateDir);
  const specs: ShareSpec[] = [];
  for (const [index, mount] of (vm.mounts ?? []).entries()) {
    const host = await hostDirectory(project, vm, mount, state);
    const inside = relative(host, state);
    const contains = !(inside.startsWith("..") || isAbsolute(inside));
    if (contains && /\p{Cc}/u.test(inside)) {
      throw new DataError(
        `mount of vm ${vm.name}: the path from ${mount.host} to ${state} has control characters`,
        {
          detail: "castra hides its state directory in the guest by that path, and cannot pass it on.",
          hint: "move the project to a directory whose path has no line breaks or tabs",
        },
      );
    }
    specs.push({
      index,
      tag: shareTag(index),
      mount,
      ...(contains ? { hide: inside.split(sep).join("/") } : {}),
    });
  }
  return specs;
}

/** The mount's host directory, resolved through symlinks; never `.castra/` or anything inside it. */
async function hostDirectory(
  project: Project,
  vm: VmConfig,
  mount: MountConfig,
  state: string,
): Promise<string> {
  const shown = displayPath(mount.host, project.rootDir);
  const info = await stat(mount.host).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT" || err.code === "ENOTDIR") return undefined;
    throw fsError(err, `read the mount ${shown} of vm ${vm.name}`, mount.host);
  });
  if (!info?.isDirectory()) {
    throw new InputMissingError(
      `mount of vm ${vm.name}: ${shown} ${info ? "is not a directory" : "does not exist"}`,
      {
        detail: `castra shares this host directory with the guest at ${mount.guest}.`,
        hint: `create ${shown}, or change host = … in that [[vms.mounts]] table of castra.toml`,
      },
    );
  }
  const real = await realpath(mount.host);
  const within = relative(state, real);
  if (!(within.startsWith("..") || isAbsolute(within))) {
    throw new DataError(`mount of vm ${vm.name}: ${shown} is castra's own state directory or inside it`, {
      detail: `${state} holds the project's private key, the VMs' disks and runtime files: it is never shared.`,
      hint: `share the project directory (host = ".") or another directory instead`,
    });
  }
  return real;
}

/** Functions both scripts share, without a process per call. `$1` and `$2` are the login user's uid and gid. */
const PRELUDE = `tab=$(printf '\\t')
one_line() { tr '\\n' ' ' | sed 's/ *$//'; }
# Is there a mount of type $1 from $2 on $3 (written as /proc/mounts writes it)?
mounted() {
  while read -r m_src m_dir m_type m_rest; do
    [ "$m_src" = "$2" ] && [ "$m_dir" = "$3" ] && [ "$m_type" = "$1" ] && return 0
  done </proc/mounts
  return 1
}
cover() { mount -t tmpfs -o ro,nosuid,nodev,noexec,mode=0555,size=4k castra-hidden "$1"; }
`;

/**
 * Mounts each share read from stdin (see `shareLines`) unless it is already there, then covers castra's state directory with an empty read-only tmpfs. Prints one
 * `castra-share <tag> mounted|already|failed <why>` line per share.
 */
const MOUNT_SCRIPT = `${PRELUDE}
while IFS=$tab read -r tag dir mode hide dir_seen hide_seen; do
  state=already
  if ! mounted 9p "$tag" "$dir_seen"; then
    state=mounted
    opts=${GUEST_MOUNT_OPTIONS}
    [ "$mode" = ro ] && opts="ro,$opts"
    if ! err=$( { mkdir -p -- "$dir" && mount -t 9p -o "$opts" "$tag" "$dir"; } 2>&1); then
      echo "castra-share $tag failed $(printf '%s' "$err" | one_line)"
      continue
    fi
    # The guest sees the host's owners: its login user gets the top of a writable share (an xattr on the host).
    [ "$mode" = rw ] && chown "$1:$2" "$dir" 2>/dev/null
  fi
  if [ "$hide" != - ] && ! mounted tmpfs castra-hidden "$hide_seen"; then
    if ! err=$(cover "$dir/$hide" 2>&1); then
      umount "$dir" 2>/dev/null
      echo "castra-share $tag failed cannot cover $hide: $(printf '%s' "$err" | one_line)"
      continue
    fi
  fi
  echo "castra-share $tag $state"
done
`;

/** Unmounts each share read from stdin (same lines, deepest first); a busy one keeps its cover and stays. */
const UNMOUNT_SCRIPT = `${PRELUDE}
while IFS=$tab read -r tag dir mode hide dir_seen hide_seen; do
  if mounted 9p "$tag" "$dir_seen"; then
    [ "$hide" != - ] && mounted tmpfs castra-hidden "$hide_seen" && umount "$dir/$hide" 2>/dev/null
    if ! err=$(umount "$dir" 2>&1); then
      [ "$hide" != - ] && cover "$dir/$hide" 2>/dev/null
      echo "castra-share $tag failed $(printf '%s' "$err" | one_line)"
      continue
    fi
  fi
  echo "castra-share $tag unmounted"
done
`;

/**
 * One tab-separated line per share: tag, guest path, ro|rw, the path of `.castra/` inside it (or "-"), and the
 * two paths as /proc/mounts writes them, so the guest compares them without a process per check.
 */
function shareLines(specs: ShareSpec[]): string {
  return specs
    .map((s) => {
      const hidden = s.hide === undefined ? "-" : procMountsPath(`${s.mount.guest}/${s.hide}`);
      const fields = [s.tag, s.mount.guest, s.mount.writable ? "rw" : "ro", s.hide ?? "-"];
      return `${[...fields, procMountsPath(s.mount.guest), hidden].join("\t")}\n`;
    })
    .join("");
}

/** A path as the kernel writes it in /proc/mounts: space, tab, newline and backslash as octal escapes. */
export function procMountsPath(path: string): string {
  return path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
}

/**
 * Mounts the VM's shares in its guest (as root, over SSH) and records the outcome for `status`. Never throws
 * for the guest's sake: a guest castra cannot log into, or without 9p, gets a failed outcome per share with the
 * line to run by hand.
 */
export async function mountShares(session: GuestSession): Promise<ShareOutcome[]> {
  const specs = await shareSpecs(session.project, session.vm);
  if (specs.length === 0) return [];
  const outcomes = await inGuest(session, specs, MOUNT_SCRIPT);
  const record: MountsRecord = {
    startedAt: session.record.startedAt,
    shares: outcomes.map((o) => ({
      tag: o.tag,
      guest: o.guest,
      mounted: o.state !== "failed",
      ...(o.state === "failed" ? { reason: o.reason } : {}),
    })),
  };
  await writeJsonAtomic(mountsRecordPath(session.project, session.vm), record);
  return outcomes;
}

/** Unmounts the VM's shares in its guest (before its memory is saved: QEMU cannot save a mounted 9p share). */
export async function unmountShares(session: GuestSession): Promise<ShareOutcome[]> {
  const specs = await shareSpecs(session.project, session.vm);
  if (specs.length === 0) return [];
  const outcomes = await inGuest(session, [...specs].reverse(), UNMOUNT_SCRIPT);
  await rm(mountsRecordPath(session.project, session.vm), { force: true });
  return outcomes.reverse();
}

async function inGuest(session: GuestSession, specs: ShareSpec[], script: string): Promise<ShareOutcome[]> {
  const failAll = (reason: string): ShareOutcome[] =>
    specs.map((s) => ({ ...failed(s, `castra cannot log into the guest: ${reason}`), unreachable: true }));
  const unreachable = unreachableReason(session);
  if (unreachable) return failAll(unreachable);
  const result = await runInGuest(session, { script, stdin: shareLines(specs) });
  if (!result) return failAll("ssh is not installed on this host");
  if (result.code === 255) return failAll(loginFailure(session, result.tail));
  const reported = new Map<string, string>();
  for (const line of result.tail) {
    const m = /^castra-share (\S+) (.*)$/.exec(line);
    if (m?.[1] && m[2] !== undefined) reported.set(m[1], m[2]);
  }
  const other = result.tail.filter((l) => !l.startsWith("castra-share ") && l.trim() !== "").at(-1);
  return specs.map((s): ShareOutcome => {
    const said = reported.get(s.tag);
    if (said === "mounted" || said === "already" || said === "unmounted")
      return {
        index: s.index,
        tag: s.tag,
        guest: s.mount.guest,
        state: said === "already" ? "already" : "mounted",
      };
    return failed(
      s,
      said?.replace(/^failed ?/, "") || other || `the guest's script exited with status ${result.code}`,
    );
  });
}

function failed(spec: ShareSpec, reason: string): ShareOutcome {
  const { index, tag, mount } = spec;
  return { index, tag, guest: mount.guest, state: "failed", reason, manual: manualMountLine(index, mount) };
}
