import { displayPath } from "../../config/load.js";
import type { Project } from "../../config/model.js";
import { describeClaim, findPortConflicts } from "../../config/ports.js";
import { brokerAddressShown } from "../../vm/guest-addresses.js";
import { projectStatus, type VmStatus } from "../../vm/state.js";
import type { CommandContext } from "../context.js";
import { resolveProject } from "../project.js";
import { formatTable } from "../render/table.js";
import type { PortsOptions } from "./specs.js";

/**
 * `castra ports`: the declared forwards as a plain, aligned table on stdout; conflicts are warnings on
 * stderr and the exit code stays 0, because `castra up` refuses to start with them anyway.
 */
export async function runPorts(opts: PortsOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const project = await resolveProject(ctx);
  if (opts.verbose) for (const line of projectNotes(project, io.cwd)) io.print(line);

  const statuses = await projectStatus(project);
  const rows = project.vms.flatMap((vm, i) => [
    ...vm.portForwards.map((f) => [vm.name, `${f.hostAddress}:${f.host}`, String(f.guest), f.protocol]),
    ...automaticSshRow(statuses[i]),
  ]);

  if (rows.length === 0) {
    io.info(
      project.synthesized
        ? "No port forwards: no castra.toml here, and the default project forwards none. `castra init` writes one to edit."
        : "No port forwards declared. Add a [[vms.port_forwards]] table (host = 2222, guest = 22) to forward one.",
    );
  } else {
    // The NOTE column only appears when a row has one, so the common table stays four columns wide.
    const header = ["VM", "HOST", "GUEST", "PROTO", ...(rows.some((r) => r.length > 4) ? ["NOTE"] : [])];
    for (const line of formatTable(header, rows)) io.print(line);
  }
  if (opts.verbose) {
    for (const vm of project.vms) {
      const declared = vm.portForwards.some((f) => f.guest === 22 && f.protocol === "tcp");
      const running = statuses.find((s) => s.vm === vm)?.record?.ssh;
      if (vm.ssh !== false && !declared && !running)
        io.info(
          `${vm.name}: \`castra up\` forwards a free 127.0.0.1 port to guest port 22 for \`castra ssh\``,
        );
    }
  }

  const conflicts = findPortConflicts(project);
  for (const conflict of conflicts) {
    const who = conflict.claims.map(describeClaim).join(", ");
    io.warn(
      `host port ${conflict.port}/${conflict.protocol} is claimed ${conflict.claims.length} times: ${who}`,
    );
  }
  if (conflicts.length > 0) {
    io.info("`castra up` refuses to start while host ports conflict: give each forward its own `host` port.");
  }
  return 0;
}

/** The SSH forward castra chose at `up`, while its VM runs. */
function automaticSshRow(status: VmStatus | undefined): string[][] {
  const live = status?.state === "running" || status?.state === "starting";
  const ssh = live ? status?.record?.ssh : undefined;
  if (!status || !ssh?.automatic) return [];
  return [[status.vm.name, `${ssh.host}:${ssh.port}`, "22", "tcp", "automatic (castra ssh)"]];
}

function projectNotes(project: Project, cwd: string): string[] {
  if (project.synthesized) {
    return [
      `project: ${project.name} (default project: no castra.toml found, nothing written)`,
      `vms:     ${project.vms.map((vm) => vm.name).join(", ")}`,
      "broker:  none (the default project has no broker)",
      "",
    ];
  }
  const file = project.configPath ? displayPath(project.configPath, cwd) : "";
  return [
    `project: ${project.name} (${file})`,
    `broker:  ${project.broker ? `guests reach it at ${brokerAddressShown(project.broker.port)} (no host port)` : "none ([broker] not set)"}`,
    "",
  ];
}
