import type { Project } from "../config/model.js";
import { InterruptedError, LaunchError } from "../errors.js";
import type { GuestCommandResult } from "../ssh/guest-command.js";
import type { ProvisionRecord } from "../vm/guest-records.js";
import type { GuestSession } from "../vm/guest-session.js";
import type { PlannedStep } from "../vm/provision.js";
import type { LiveVm, ProjectEvent } from "./events.js";
import type { VmHost } from "./vm-host.js";

/**
 * What happens inside a guest once it is ready: its shares are mounted, then its provisioning steps run
 * (docs/design.md, "Mounts and provisioning"). `boot` runs pending `once` steps and every `always` step;
 * `resume` (not a boot) only pending `once` steps; `all` (`castra provision`) every step.
 */
export type SetupMode = "boot" | "resume" | "all";

export interface GuestSetupOptions {
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  onEvent: (event: ProjectEvent) => void;
}

/** How long a guest that is ready gets for its SSH server to answer the project key. */
export const SSH_ANSWER_MS = 30_000;
const OUTPUT_LINES_SHOWN = 10;

export async function setUpGuest(
  project: Project,
  host: VmHost,
  live: LiveVm,
  mode: SetupMode,
  options: GuestSetupOptions,
): Promise<void> {
  const { vm, record } = live;
  const session: GuestSession = {
    project,
    vm,
    record,
    env: options.env,
    signal: options.signal,
    connectUntil: Date.now() + SSH_ANSWER_MS,
  };
  if ((vm.mounts ?? []).length > 0) await mount(host, session, options.onEvent);
  throwIfAborted(options.signal);
  if ((vm.provision ?? []).length > 0) await provision(host, session, mode, options.onEvent);
}

/** Whether `setUpGuest` has anything to do for this VM. */
export function hasGuestSetup(live: Pick<LiveVm, "vm">): boolean {
  return (live.vm.mounts ?? []).length > 0 || (live.vm.provision ?? []).length > 0;
}

async function mount(
  host: VmHost,
  session: GuestSession,
  onEvent: GuestSetupOptions["onEvent"],
): Promise<void> {
  const name = session.vm.name;
  const began = Date.now();
  const outcomes = await host.mountShares(session);
  const mounts = session.vm.mounts ?? [];
  const up = outcomes.flatMap((o) =>
    o.state === "failed" ? [] : [mounts[o.index]].filter((m) => m !== undefined),
  );
  if (up.length > 0) onEvent({ type: "shares-mounted", vm: name, shares: up, elapsedMs: Date.now() - began });
  for (const o of outcomes)
    if (o.state === "failed")
      onEvent({
        type: "share-failed",
        vm: name,
        tag: o.tag,
        guest: o.guest,
        reason: o.reason,
        manual: o.manual,
      });
}

async function provision(
  host: VmHost,
  session: GuestSession,
  mode: SetupMode,
  onEvent: GuestSetupOptions["onEvent"],
): Promise<void> {
  const { project, vm } = session;
  const plan = await host.planProvisioning(project, vm);
  const { record } = plan;
  const due = plan.steps.filter((s) => {
    if (mode === "all") return true;
    return s.step.when === "always" ? mode === "boot" : record.done[s.digest] === undefined;
  });
  const bootOnly = mode === "resume" ? plan.steps.filter((s) => s.step.when === "always").length : 0;
  const done = plan.steps.length - due.length - bootOnly;
  onEvent({ type: "provisioning", vm: vm.name, run: due.length, done, bootOnly });
  if (due.length === 0) return;
  // Steps no longer in castra.toml are forgotten: put back, they count as changed and run again.
  const current = new Set(plan.steps.map((s) => s.digest));
  for (const digest of Object.keys(record.done)) if (!current.has(digest)) delete record.done[digest];
  const began = Date.now();
  for (const planned of due) {
    onEvent({
      type: "provision-step",
      vm: vm.name,
      index: planned.index,
      total: plan.steps.length,
      label: planned.label,
    });
    const result = await host.runProvisionStep(session, planned, (line) =>
      onEvent({ type: "provision-output", vm: vm.name, line }),
    );
    throwIfAborted(session.signal);
    if (result.code !== 0) {
      await save(host, project, session, record, {
        index: planned.index,
        label: planned.label,
        exitCode: result.code,
      });
      throw stepFailed(project, session, planned, plan.steps.length, result);
    }
    if (planned.step.when === "once") record.done[planned.digest] = new Date().toISOString();
    await save(host, project, session, record);
  }
  onEvent({ type: "provisioned", vm: vm.name, ran: due.length, elapsedMs: Date.now() - began });
}

function save(
  host: VmHost,
  project: Project,
  session: GuestSession,
  record: ProvisionRecord,
  failed?: NonNullable<ProvisionRecord["last"]>["failed"],
): Promise<void> {
  record.last = { at: new Date().toISOString(), ok: failed === undefined, ...(failed ? { failed } : {}) };
  return host.saveProvisionRecord(project, session.vm, record);
}

/** Exit 70 naming the VM, the step and its status, with its last lines; the VM keeps running. */
function stepFailed(
  project: Project,
  session: GuestSession,
  planned: PlannedStep,
  total: number,
  result: GuestCommandResult,
): LaunchError {
  const name = session.vm.name;
  const target = project.vms.length > 1 ? ` ${name}` : "";
  const lines = result.tail.slice(-OUTPUT_LINES_SHOWN);
  const how = result.code === 255 ? "ssh could not run it (exit status 255)" : `exit status ${result.code}`;
  return new LaunchError(`vm ${name}: provisioning step ${planned.index + 1} of ${total} failed: ${how}`, {
    detail: [
      `step: ${planned.label}`,
      ...(lines.length > 0 ? ["its last lines:", ...lines.map((l) => `  ${l}`)] : ["it printed nothing"]),
      `vm ${name} keeps running.`,
    ].join("\n"),
    hint: `see all of its output with \`castra logs${target}\`, fix the step in castra.toml, then run \`castra provision${target}\``,
  });
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError("Interrupted");
}
