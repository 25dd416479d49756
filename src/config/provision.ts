import { type FieldReader, joinPath } from "./fields.js";
import type { ProvisionStep, ProvisionWhen } from "./model.js";

/** Reads `[[vms.provision]]`: shell commands or scripts run in the guest as root, in order. */

const STEP_KEYS = ["run", "script", "when"] as const;
const STEP_EXAMPLE = '[[vms.provision]]\nrun = "apk add --no-cache git make"';
const WHEN_EXAMPLE = 'when = "always"';

export function readProvision(
  value: unknown,
  path: string,
  reader: FieldReader,
  resolvePath: (text: string) => string,
): ProvisionStep[] {
  const steps: ProvisionStep[] = [];
  for (const { table, at } of reader.tableList(value, path, STEP_KEYS, STEP_EXAMPLE)) {
    const when = readWhen(table, at, reader);
    if (table.run !== undefined && table.script !== undefined) {
      reader.fail(at, "set only one of run and script", STEP_EXAMPLE);
      continue;
    }
    if (table.script !== undefined) {
      const script = reader.path(table, "script", at, 'script = "scripts/setup.sh"');
      if (script !== undefined && when) steps.push({ kind: "script", path: resolvePath(script), when });
      continue;
    }
    const command = reader.string(table, "run", at, STEP_EXAMPLE, true);
    // The command travels to the guest's shell as text: a NUL byte would cut it short there.
    if (command?.includes("\0")) {
      reader.fail(joinPath(at, "run"), "must not contain NUL characters", STEP_EXAMPLE);
      continue;
    }
    if (command !== undefined && when) steps.push({ kind: "run", command, when });
  }
  return steps;
}

function readWhen(
  table: Record<string, unknown>,
  at: string,
  reader: FieldReader,
): ProvisionWhen | undefined {
  if (table.when === undefined) return "once";
  return reader.choice(table, "when", at, ["once", "always"], WHEN_EXAMPLE);
}
