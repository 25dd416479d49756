import { type BrokerStatus, vmBrokerState } from "../../broker/state.js";
import { displayPath } from "../../config/load.js";
import { DEFAULT_CPUS, DEFAULT_MEMORY_BYTES, type Project, type VmConfig } from "../../config/model.js";
import { ExitCode } from "../../errors.js";
import { formatBytes } from "../../host/bytes.js";
import type { QemuProfile } from "../../images/catalog-schema.js";
import { pendingChanges } from "../../vm/drift.js";
import { brokerAddressShown } from "../../vm/guest-addresses.js";
import { readMountsRecord, readProvisionRecord } from "../../vm/guest-records.js";
import { shareTag } from "../../vm/shares.js";
import type { VmState, VmStatus } from "../../vm/state.js";
import type { CommandContext } from "../context.js";
import type { IO } from "../io.js";
import { resolveProject, stateReaderOf } from "../project.js";
import { formatTable } from "../render/table.js";
import { selectVms } from "../targets.js";
import type { StatusOptions } from "./specs.js";

/** One VM as `status --json` prints it (snake_case, like castra.toml). */
export interface VmStatusJson {
  name: string;
  state: VmState;
  pid: number | null;
  cpus: number;
  memory_bytes: number;
  uptime_seconds: number | null;
  accelerator: string | null;
  base_image: string;
  overlay: string;
  /** Declared forwards, plus the automatic SSH forward (`automatic: true`) while the VM runs. */
  forwards: { host_address: string; host: number; guest: number; protocol: string; automatic?: true }[];
  /** Where `castra ssh` connects while the VM runs; null when stopped or with `ssh = false`. */
  ssh: { host: string; port: number; user: string } | null;
  broker: "waiting" | "reachable" | "offline" | null;
  serial_log: string;
  qemu_log: string;
  last_log_lines?: string[];
  /** For a running VM: what castra.toml now says that its QEMU does not have (they wait for a restart). */
  pending_changes?: string[];
  /** For a suspended VM: when its state was saved and how large it is; `castra up` resumes it. */
  suspended?: { saved_at: string; state_bytes: number };
  /** Its mounts; `mounted` says whether `up` mounted each in the guest that runs now (null: not running). */
  mounts: {
    host: string;
    guest: string;
    writable: boolean;
    tag: string;
    mounted: boolean | null;
    reason?: string;
  }[];
  /** Its provisioning steps and the latest run in its overlay (null before any). */
  provision: { steps: number; last_run: ProvisionRunJson | null };
}

interface ProvisionRunJson {
  at: string;
  ok: boolean;
  failed_step?: { number: number; label: string; exit_status: number };
}

/** `castra status`: a table (or JSON) of every VM; exit 1 when any VM is in state `error`. */
export async function runStatus(opts: StatusOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const project = await resolveProject(ctx);
  const reader = stateReaderOf(ctx);
  const targets = selectVms(project, opts.vms, "status");
  const statuses = await Promise.all(targets.map((vm) => reader.vmStatus(project, vm)));
  const broker = project.broker ? await reader.brokerStatus(project.stateDir) : undefined;
  const hints = await profileHints(statuses, io.env);
  const vms: VmStatusJson[] = await Promise.all(
    statuses.map(async (s) => ({
      ...toJson(s, broker, hints.get(s.vm.name)),
      ...(await guestState(project, s)),
    })),
  );
  const anyError = statuses.some((s) => s.state === "error");
  if (opts.json) {
    const brokerJson = project.broker
      ? {
          port: project.broker.port,
          state: broker?.state ?? "stopped",
          pid: broker?.state === "running" ? (broker.record?.pid ?? null) : null,
        }
      : null;
    const doc = {
      project: project.name,
      directory: project.rootDir,
      config: project.configPath,
      vms,
      broker: brokerJson,
    };
    io.print(JSON.stringify(doc, null, 2));
  } else {
    io.print(projectLine(project, io));
    printTable(io, vms);
    printMounts(io, vms);
    if (project.broker) {
      const state = broker?.state === "running" ? `running (pid ${broker.record?.pid})` : "not running";
      io.print(`Host broker (guests: ${brokerAddressShown(project.broker.port)}): ${state}`);
    }
    for (const s of statuses) if (s.state === "error") explainError(io, s);
    for (const vm of vms) if (vm.pending_changes?.length) explainPending(io, vm.name, vm.pending_changes);
    for (const vm of vms) explainProvisioning(io, vm, project.vms.length > 1);
  }
  return anyError ? ExitCode.vmError : 0;
}

/**
 * A managed VM's CPU and memory hints from the catalog, so a stopped VM shows what `up` will give it.
 * A live VM shows what its run record says, so the catalog (and its validator) is not even loaded.
 */
async function profileHints(statuses: VmStatus[], env: NodeJS.ProcessEnv): Promise<Map<string, QemuProfile>> {
  const hints = new Map<string, QemuProfile>();
  const managed = statuses
    .filter((s) => !["running", "starting", "shutting_down"].includes(s.state))
    .map((s) => s.vm)
    .filter((vm) => vm.source.kind === "managed" && vm.source.useProfile);
  if (managed.length === 0) return hints;
  const { findEntry, loadCatalog } = await import("../../images/catalog.js");
  const catalog = await loadCatalog(env).catch(() => undefined);
  for (const vm of managed) {
    if (!catalog || vm.source.kind !== "managed") continue;
    try {
      hints.set(vm.name, findEntry(catalog, vm.source.name, vm.source.version).profile);
    } catch {
      // An unknown image: `up` reports it; status shows the castra defaults.
    }
  }
  return hints;
}

/** What castra recorded about the inside of the guest: its shares (while it runs) and its provisioning. */
async function guestState(
  project: Project,
  status: VmStatus,
): Promise<Pick<VmStatusJson, "mounts" | "provision">> {
  const { vm, record, state } = status;
  const live = record && (state === "running" || state === "starting" || state === "shutting_down");
  const shares = live ? (await readMountsRecord(project, vm, record.startedAt))?.shares : undefined;
  const mounts = (vm.mounts ?? []).map((m, i) => {
    const share = shares?.find((s) => s.tag === shareTag(i));
    return {
      host: m.host,
      guest: m.guest,
      writable: m.writable,
      tag: shareTag(i),
      mounted: live ? (share?.mounted ?? false) : null,
      ...(share?.reason ? { reason: share.reason } : {}),
    };
  });
  const steps = (vm.provision ?? []).length;
  const last = steps > 0 ? (await readProvisionRecord(project, vm))?.last : undefined;
  const run: ProvisionRunJson | null = last
    ? {
        at: last.at,
        ok: last.ok,
        ...(last.failed
          ? {
              failed_step: {
                number: last.failed.index + 1,
                label: last.failed.label,
                exit_status: last.failed.exitCode,
              },
            }
          : {}),
      }
    : null;
  return { mounts, provision: { steps, last_run: run } };
}

function toJson(
  status: VmStatus,
  broker: BrokerStatus | undefined,
  hint?: QemuProfile,
): Omit<VmStatusJson, "mounts" | "provision"> {
  const { vm, record, state } = status;
  const live = state === "running" || state === "starting" || state === "shutting_down";
  const startedAt = live ? record?.startedAt : undefined;
  const ssh = live ? record?.ssh : undefined;
  return {
    name: vm.name,
    state,
    pid: live && record ? record.pid : null,
    cpus: (live ? record?.cpus : undefined) ?? vm.cpus ?? hint?.cpus ?? DEFAULT_CPUS,
    memory_bytes:
      (live ? record?.memoryBytes : undefined) ?? vm.memoryBytes ?? hint?.memory ?? DEFAULT_MEMORY_BYTES,
    uptime_seconds: startedAt ? Math.max(0, Math.floor((Date.now() - Date.parse(startedAt)) / 1000)) : null,
    accelerator: live ? (record?.accel ?? null) : null,
    base_image: (live ? record?.baseImage : undefined) ?? describeSource(vm),
    overlay: vm.overlay,
    // A running VM shows what its QEMU has, not what castra.toml says since: see pending_changes.
    forwards: [
      ...((live ? record?.forwards : undefined) ?? vm.portForwards).map((f) => ({
        host_address: f.hostAddress,
        host: f.host,
        guest: f.guest,
        protocol: f.protocol,
      })),
      ...(ssh?.automatic
        ? [{ host_address: ssh.host, host: ssh.port, guest: 22, protocol: "tcp", automatic: true as const }]
        : []),
    ],
    ssh: ssh ? { host: ssh.host, port: ssh.port, user: ssh.user } : null,
    broker: broker ? vmBrokerState(broker, vm.name, startedAt) : null,
    serial_log: status.paths.serialLog,
    qemu_log: status.paths.qemuLog,
    ...(state === "error" ? { last_log_lines: status.lastLogLines ?? [] } : {}),
    ...(live && record ? { pending_changes: pendingChanges(vm, record) } : {}),
    ...(status.suspended
      ? { suspended: { saved_at: status.suspended.savedAt, state_bytes: status.suspended.stateBytes } }
      : {}),
  };
}

/** "Project demo (~/src/demo)": which project this is, since discovery may have found it in a parent. */
function projectLine(project: Project, io: IO): string {
  const where = project.synthesized
    ? `${project.rootDir}, no castra.toml: the default project`
    : project.rootDir;
  return io.out.color.bold(`Project ${project.name} (${where})`);
}

function describeSource(vm: VmConfig): string {
  return vm.source.kind === "path" ? vm.source.path : `${vm.source.name}@${vm.source.version} (managed)`;
}

function printTable(io: IO, vms: VmStatusJson[]): void {
  const c = io.out.color;
  const paint: Record<VmState, (s: string) => string> = {
    running: c.green,
    starting: c.yellow,
    shutting_down: c.yellow,
    suspended: c.cyan,
    stopped: c.dim,
    error: c.red,
  };
  const rows = vms.map((vm) => [
    vm.name,
    vm.state,
    `${vm.cpus}/${formatBytes(vm.memory_bytes)}`,
    vm.uptime_seconds === null ? "-" : formatDuration(vm.uptime_seconds),
    vm.broker ?? "-",
    vm.forwards
      .map((f) => `${f.host_address}:${f.host}→${f.guest}/${f.protocol}${f.automatic ? " (ssh)" : ""}`)
      .join(", ") || "-",
  ]);
  const header = ["VM", "STATE", "CPU/MEM", "UPTIME", "BROKER", "FORWARDS"];
  const lines = formatTable(header, rows, (cell, column, row) => {
    if (row < 0) return c.bold(cell);
    return column === 1 ? paint[vms[row]?.state ?? "stopped"](cell) : cell;
  });
  for (const line of lines) io.print(line);
}

function explainPending(io: IO, name: string, changes: string[]): void {
  io.warn(`${name} runs without what castra.toml now says: ${changes.join(", ")}`);
  io.info(
    `${io.err.color.cyan("hint:")} they take effect after \`castra down ${name}\` and \`castra up ${name}\``,
  );
}

/** A second table, only when some VM has mounts: where each appears and whether it is mounted now. */
function printMounts(io: IO, vms: VmStatusJson[]): void {
  const rows = vms.flatMap((vm) =>
    vm.mounts.map((m) => [
      vm.name,
      m.guest,
      m.host === io.cwd ? "." : displayPath(m.host, io.cwd),
      m.writable ? "writable" : "read-only",
      m.mounted === null ? "-" : m.mounted ? "yes" : "no",
    ]),
  );
  if (rows.length === 0) return;
  io.print("");
  for (const line of formatTable(["VM", "MOUNT", "HOST", "MODE", "MOUNTED"], rows)) io.print(line);
}

/** Provisioning that failed stays in view until a later run succeeds. */
function explainProvisioning(io: IO, vm: VmStatusJson, named: boolean): void {
  const failed = vm.provision.last_run?.failed_step;
  if (!failed) return;
  const target = named ? ` ${vm.name}` : "";
  io.warn(
    `${vm.name}: provisioning failed at step ${failed.number} (${failed.label}) with exit status ${failed.exit_status}`,
  );
  io.info(
    `${io.err.color.cyan("hint:")} \`castra logs${target}\` shows its output; \`castra provision${target}\` runs the steps again`,
  );
}

function explainError(io: IO, status: VmStatus): void {
  const log = displayPath(status.paths.qemuLog, io.cwd);
  const lines = status.lastLogLines ?? [];
  io.warn(
    `${status.vm.name}: QEMU (pid ${status.record?.pid}) exited without \`castra down\` (a crash, a kill, or a guest power-off)`,
  );
  if (lines.length > 0)
    io.info([`  its last lines (all of it: ${log}):`, ...lines.map((l) => `    ${l}`)].join("\n"));
  else io.info(`  QEMU wrote nothing before it ended; its log: ${log}`);
  io.info(
    `${io.err.color.cyan("hint:")} run \`castra up\` to start it again on the same overlay, or \`castra logs\` for the full story`,
  );
}

export function formatDuration(totalSeconds: number): string {
  const d = Math.floor(totalSeconds / 86400);
  const h = Math.floor((totalSeconds % 86400) / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
