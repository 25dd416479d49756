import type { Project, VmConfig } from "../config/model.js";
import { closestKey } from "../config/suggest.js";
import { UsageError } from "../errors.js";

/** The VMs a command names (`castra up web db`), in the project's order; none named: every VM. */
export function selectVms(
  project: Project,
  names: readonly string[] | undefined,
  command: string,
): VmConfig[] {
  if (!names || names.length === 0) return project.vms;
  for (const name of names) findVm(project, name, command);
  return project.vms.filter((vm) => names.includes(vm.name));
}

/**
 * The one VM a command works on: the one named, else the project's only VM. `naming` is how the command
 * takes a VM's name (`--vm web`, or `web` as its operand), for the hint.
 */
export function oneVm(
  project: Project,
  name: string | undefined,
  command: string,
  naming: "--vm" | "operand" = "--vm",
): VmConfig {
  if (name !== undefined) return findVm(project, name, command);
  const [only, ...others] = project.vms;
  if (only && others.length === 0) return only;
  const flag = naming === "--vm" ? "--vm " : "";
  throw new UsageError("Which VM? This project has several", {
    detail: `VMs: ${known(project)}`,
    hint: `name one: castra ${command} ${flag}${project.vms[0]?.name ?? "VM"}`,
  });
}

function findVm(project: Project, name: string, command: string): VmConfig {
  const vm = project.vms.find((v) => v.name === name);
  if (vm) return vm;
  const near = closestKey(
    name,
    project.vms.map((v) => v.name),
  );
  throw new UsageError(`No VM named ${JSON.stringify(name)} in this project`, {
    detail: `VMs: ${known(project)}.`,
    hint: near
      ? `did you mean \`castra ${command} ${near}\`?`
      : `name one of them, e.g. castra ${command} ${project.vms[0]?.name ?? "VM"}`,
  });
}

function known(project: Project): string {
  return project.vms.map((vm) => vm.name).join(", ");
}
