import { readFile, statfs } from "node:fs/promises";
import { freemem, cpus as hostCpus, totalmem } from "node:os";
import { dirname } from "node:path";
import type { PortForward, Project, VmConfig } from "../config/model.js";
import { describeClaim, findPortConflicts } from "../config/ports.js";
import { CastraError, ExitCode, type ExitCodeValue } from "../errors.js";
import { formatBytes } from "../host/bytes.js";
import { existingAncestor, exists } from "../host/files.js";
import {
  findOnPath,
  type HostTools,
  PERL,
  perlMissingError,
  QEMU_IMG,
  QEMU_SYSTEM,
  toolMissingError,
} from "../host/tools.js";
import type { BaseImageLocation } from "./base-image.js";
import { subnetHoldsMetadataAddress, vmSubnet } from "./guest-network.js";
import { findPortHolder, probePort } from "./host-ports.js";
import type { VmResources } from "./qemu-args.js";

/** A qcow2 overlay starts small but grows with every guest write; less than this free is asking for trouble. */
export const MIN_FREE_DISK_BYTES = 512 * 1024 * 1024;

export interface PreflightVm {
  vm: VmConfig;
  /** A bring-your-own image's location; a managed image is made sure of by the image pipeline instead. */
  base?: BaseImageLocation;
  resources: VmResources;
}

export interface HostCapacity {
  cpus: number;
  totalMemoryBytes: number;
  availableMemoryBytes: number;
}

export interface PreflightInput {
  project: Project;
  /** Only the VMs this command will start. */
  vms: PreflightVm[];
  force: boolean;
  env: NodeJS.ProcessEnv;
  /** The host's CPUs and memory; read from the OS unless a test provides them. */
  capacity?: HostCapacity;
}

export interface PreflightResult {
  tools: HostTools;
  /** Problems `--force` turned into warnings. */
  warnings: string[];
}

interface Problem {
  message: string;
  hint: string;
  exitCode: ExitCodeValue;
  /** `--force` may turn it into a warning; missing tools and images are never forced. */
  forceable: boolean;
}

/** Every check before anything starts; all problems are reported together in one error. */
export async function preflight(input: PreflightInput): Promise<PreflightResult> {
  const [toolProblems, tools] = await checkTools(input.env, relayedVms(input));
  const problems = [
    ...toolProblems,
    ...(await checkBaseImages(input.vms)),
    ...(await checkDisk(input.vms)),
    ...checkCapacity(input.vms, input.capacity ?? (await readHostCapacity())),
    ...checkConfigConflicts(input),
    ...(await checkHostPorts(input)),
  ];
  const blocking = problems.filter((p) => !input.force || !p.forceable);
  if (blocking.length > 0) throw preflightError(blocking);
  if (!tools) throw new Error("unreachable: tools are found when there is no tool problem");
  return { tools, warnings: problems.map((p) => p.message) };
}

/** The VMs whose guests reach castra's metadata service or broker: QEMU relays each connection with perl. */
function relayedVms({ project, vms }: PreflightInput): string[] {
  return vms
    .filter(({ vm }) => project.broker !== undefined || subnetHoldsMetadataAddress(vmSubnet(vm)))
    .map(({ vm }) => vm.name);
}

async function checkTools(
  env: NodeJS.ProcessEnv,
  relayedVms: string[],
): Promise<[Problem[], HostTools | undefined]> {
  const [qemuSystem, qemuImg, perl] = await Promise.all([
    findOnPath(QEMU_SYSTEM, env.PATH),
    findOnPath(QEMU_IMG, env.PATH),
    relayedVms.length > 0 ? findOnPath(PERL, env.PATH) : undefined,
  ]);
  const errors = [];
  const missingQemu = [qemuSystem ? undefined : QEMU_SYSTEM, qemuImg ? undefined : QEMU_IMG].filter(
    (t): t is string => t !== undefined,
  );
  if (missingQemu.length > 0) errors.push(toolMissingError(missingQemu));
  if (relayedVms.length > 0 && !perl) errors.push(perlMissingError(relayedVms));
  if (qemuSystem && qemuImg && errors.length === 0) return [[], { qemuSystem, qemuImg, perl }];
  const problems = errors.map((error) => ({
    message: `${error.headline}\n${error.detail}`,
    hint: error.hint ?? "",
    exitCode: ExitCode.toolMissing,
    forceable: false,
  }));
  return [problems, undefined];
}

async function checkBaseImages(vms: PreflightVm[]): Promise<Problem[]> {
  const problems: Problem[] = [];
  for (const { vm, base } of vms) {
    if (!base || (await exists(base.path))) continue;
    problems.push({
      message: `vm ${vm.name}: base image ${base.path} does not exist`,
      hint: `put the image at ${base.path}, or point base_image of vm ${vm.name} in castra.toml at an existing qcow2 file`,
      exitCode: ExitCode.noInput,
      forceable: false,
    });
  }
  return problems;
}

async function checkDisk(vms: PreflightVm[]): Promise<Problem[]> {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const { vm } of vms) {
    const dir = await existingAncestor(dirname(vm.overlay));
    if (seen.has(dir)) continue;
    seen.add(dir);
    const free = await statfs(dir).then(
      (s) => s.bavail * s.bsize,
      () => undefined,
    );
    if (free === undefined || free >= MIN_FREE_DISK_BYTES) continue;
    problems.push({
      message: `only ${formatBytes(free)} free in ${dir} for the overlay of vm ${vm.name} (want at least ${formatBytes(MIN_FREE_DISK_BYTES)})`,
      hint: `free some space (df -h ${dir}), or run \`castra up --force\` to start anyway`,
      exitCode: ExitCode.ioErr,
      forceable: true,
    });
  }
  return problems;
}

function checkCapacity(vms: PreflightVm[], capacity: HostCapacity): Problem[] {
  const problems: Problem[] = [];
  const hint = "lower cpus or memory in castra.toml, or run `castra up --force` to start anyway";
  for (const { vm, resources } of vms) {
    if (resources.cpus <= capacity.cpus) continue;
    const message = `vm ${vm.name} asks for ${resources.cpus} CPUs; this host has ${capacity.cpus}`;
    problems.push({ message, hint, exitCode: ExitCode.software, forceable: true });
  }
  const wanted = vms.reduce((sum, v) => sum + v.resources.memoryBytes, 0);
  const names = vms.map((v) => v.vm.name).join(", ");
  if (wanted > capacity.availableMemoryBytes) {
    const message =
      `${names} ${vms.length > 1 ? "ask" : "asks"} for ${formatBytes(wanted)} of memory; ` +
      `${formatBytes(capacity.availableMemoryBytes)} of ${formatBytes(capacity.totalMemoryBytes)} is available`;
    problems.push({ message, hint, exitCode: ExitCode.software, forceable: true });
  }
  return problems;
}

/** Two forwards in castra.toml on the same host port would make the second QEMU fail half-way. */
function checkConfigConflicts(input: PreflightInput): Problem[] {
  return findPortConflicts(input.project).map((conflict) => ({
    message: `host port ${conflict.port}/${conflict.protocol} is claimed by ${conflict.claims.map(describeClaim).join(" and ")}`,
    hint: "give each forward its own host port in castra.toml; `castra ports` lists them",
    exitCode: ExitCode.dataErr,
    forceable: false,
  }));
}

async function checkHostPorts(input: PreflightInput): Promise<Problem[]> {
  // The broker takes no host port: it listens on a unix socket.
  const wanted = input.vms.flatMap(({ vm }) =>
    vm.portForwards.map((f: PortForward) => ({
      address: f.hostAddress,
      port: f.host,
      protocol: f.protocol,
      owner: `vm ${vm.name} (forward to guest port ${f.guest})`,
    })),
  );
  const problems: Problem[] = [];
  for (const want of wanted) {
    const code = await probePort(want.address, want.port, want.protocol);
    if (!code) continue;
    const where = `${want.address}:${want.port}/${want.protocol}`;
    const holder = code === "EADDRINUSE" ? await findPortHolder(want.port, want.protocol) : undefined;
    const other = holder?.castraVm;
    const by = other
      ? ` by castra VM ${other.vm} of project ${other.project}${other.directory ? ` (${other.directory})` : ""}`
      : holder
        ? ` by ${holder.command} (pid ${holder.pid})`
        : "";
    const reason = code === "EADDRINUSE" ? `is already in use${by}` : `cannot be bound (${code})`;
    problems.push({
      message: `host port ${where} for ${want.owner} ${reason}`,
      hint: other
        ? `stop that VM (${other.directory ? `cd ${other.directory} && ` : ""}castra down ${other.vm}) or change the host port in castra.toml`
        : holder
          ? `stop pid ${holder.pid} (kill ${holder.pid}) or change the host port in castra.toml, then run \`castra up\` again`
          : `free the port or change the host port in castra.toml (\`castra ports\` lists them), then run \`castra up\` again`,
      exitCode: ExitCode.software,
      forceable: true,
    });
  }
  return problems;
}

const PRIORITY: ExitCodeValue[] = [ExitCode.toolMissing, ExitCode.noInput, ExitCode.dataErr, ExitCode.ioErr];

/** One error for all problems; its exit code is the most fundamental problem's (tools, then images, ...). */
function preflightError(problems: Problem[]): CastraError {
  const rank = (p: Problem) =>
    PRIORITY.includes(p.exitCode) ? PRIORITY.indexOf(p.exitCode) : PRIORITY.length;
  const sorted = [...problems].sort((a, b) => rank(a) - rank(b));
  const first = sorted[0] as Problem;
  if (sorted.length === 1) {
    const [headline = first.message, ...rest] = first.message.split("\n");
    return new CastraError(headline, first.exitCode, {
      detail: rest.join("\n") || undefined,
      hint: first.hint,
    });
  }
  const detail = sorted.map((p) => `- ${p.message.split("\n").join("\n  ")}`).join("\n");
  return new CastraError(`Cannot start: ${sorted.length} problems found before launch`, first.exitCode, {
    detail,
    hint: first.hint,
  });
}

export async function readHostCapacity(): Promise<HostCapacity> {
  const meminfo = await readFile("/proc/meminfo", "utf8").catch(() => "");
  const availableKb = /^MemAvailable:\s+(\d+) kB/m.exec(meminfo)?.[1];
  return {
    cpus: hostCpus().length,
    totalMemoryBytes: totalmem(),
    availableMemoryBytes: availableKb ? Number(availableKb) * 1024 : freemem(),
  };
}
