import type { MountConfig, VmConfig } from "../config/model.js";
import type { LockHolder } from "../host/lock.js";
import type { NarrowedMode } from "../host/private-files.js";
import type { ImageEvent } from "../images/events.js";
import type { Accelerator } from "../vm/accel.js";
import type { Readiness } from "../vm/readiness.js";
import type { SshReadiness } from "../vm/ssh-ready.js";
import type { VmRunRecord } from "../vm/state.js";
import type { StopEvent, StoppedBy } from "../vm/stop.js";

/**
 * What starting and stopping a project reports while it works, in order; the CLI renders these (a live line
 * per VM on a terminal, plain lines elsewhere). Core code never prints.
 */
export type ProjectEvent =
  /** Entries under `.castra/` that others could read were narrowed to owner-only. */
  | { type: "modes-narrowed"; stateDir: string; narrowed: NarrowedMode[] }
  /** Another castra holds the project lock; this one waits. */
  | { type: "lock-wait"; holder: LockHolder }
  /** The VM already runs (or boots): nothing to start, only to wait for. */
  | { type: "already-live"; vm: string; state: "running" | "starting"; pid: number }
  /** A running VM lacks settings castra.toml now has: they wait for a restart. */
  | { type: "settings-pending"; vm: string; changes: string[] }
  /** QEMU had exited on its own since the last `up`: it is started again on the same overlay. */
  | { type: "restarting-after-error"; vm: string; pid: number }
  /** `auto` found no usable KVM and falls back to TCG. */
  | { type: "accel-fallback"; reason: string }
  /** The image pipeline at work for a managed VM. */
  | { type: "image"; event: ImageEvent }
  /** A preflight problem that `--force` turned into a warning. */
  | { type: "check-forced"; problem: string }
  /** Something about a guest's access (its network, metadata or keys) worth a warning. */
  | { type: "guest-access-warning"; message: string }
  | { type: "overlay-created"; vm: string; overlay: string; base: string }
  | { type: "vm-starting"; vm: string; accel: Accelerator; cpus: number; memoryBytes: number }
  /** A suspended VM is started from its saved state instead of booting. */
  | { type: "vm-resuming"; vm: string; savedAt: string }
  /** A suspended VM's saved state was thrown away (`down`, or `up --discard-suspended`). */
  | { type: "saved-state-discarded"; vm: string; savedAt: string }
  /** The VM is not in a state the command acts on (suspending a stopped VM, say): nothing done. */
  | { type: "skipped"; vm: string; state: string; action: string }
  | { type: "suspending"; vm: string; pid: number; memoryBytes: number }
  | { type: "vm-suspended"; vm: string; elapsedMs: number; stateBytes: number }
  | { type: "vm-destroyed"; vm: string; removed: string[] }
  | { type: "broker-started"; port: number }
  /** Waiting for the VM's guest to be ready begins. */
  | { type: "waiting"; vm: string; readyPattern?: string }
  /** Still booting, `elapsedMs` since QEMU started; sent on every look at the guest. */
  | { type: "booting"; vm: string; elapsedMs: number; readyPattern?: string }
  /** The guest booted; now its SSH server must take the project key. */
  | { type: "waiting-ssh"; vm: string; readiness: Readiness; readyPattern?: string }
  /** Ready: booted, and (when castra gave it the key) SSH accepts it, or why that was not checked. */
  | { type: "ready"; vm: string; readiness: Readiness; readyPattern?: string; ssh?: SshReadiness }
  /** Shares mounted in the guest (or found still mounted), with the time it took. */
  | { type: "shares-mounted"; vm: string; shares: MountConfig[]; elapsedMs: number }
  /** A share castra could not mount: why, and the line to run in the guest as root. `up` goes on. */
  | { type: "share-failed"; vm: string; tag: string; guest: string; reason: string; manual: string }
  /** Provisioning of one VM: steps to run now, `once` steps already done, `always` steps left for a boot. */
  | { type: "provisioning"; vm: string; run: number; done: number; bootOnly: number }
  | { type: "provision-step"; vm: string; index: number; total: number; label: string }
  /** One line the step printed (stdout or stderr). */
  | { type: "provision-output"; vm: string; line: string }
  | { type: "provisioned"; vm: string; ran: number; elapsedMs: number }
  /** `up --no-wait`: these VMs' mounts and provisioning wait for `castra provision`. */
  | { type: "setup-deferred"; vms: string[] }
  /** A VM that no longer runs left runtime files, now removed. */
  | { type: "stale-cleared"; vm: string; pid: number; cause: "exited" | "pid-reused" }
  /** `booting`: never reached ready, so ACPI gets a short wait; `force`: no ACPI at all. */
  | { type: "stopping"; vm: string; pid: number; timeoutMs: number; booting: boolean; force: boolean }
  | { type: "stop-step"; vm: string; step: StopEvent }
  | { type: "stopped"; vm: string; by: StoppedBy; elapsedMs: number }
  | { type: "broker-stopped" };

export type ProjectEventType = ProjectEvent["type"];

/** A VM the project runs, with what `up` recorded about it (its run record). */
export interface LiveVm {
  vm: VmConfig;
  record: VmRunRecord;
}
