import { describe, type FieldReader, joinPath } from "./fields.js";
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
  if (!Array.isArray(value)) {
    return (
      reader.fail(path, `must be a list of [[vms.provision]] tables, not ${describe(value)}`, STEP_EXAMPLE) ??
      []
    );
  }
  const steps: ProvisionStep[] = [];
  value.forEach((entry, index) => {
    const at = `${path}[${index}]`;
    const table = reader.table(entry, at, STEP_EXAMPLE);
    if (!table) return;
    reader.unknownKeys(table, at, STEP_KEYS);
    const when = readWhen(table, at, reader);
    if (table.run !== undefined && table.script !== undefined) {
      reader.fail(at, "set only one of run and script", STEP_EXAMPLE);
      return;
    }
    if (table.script !== undefined) {
      const script = reader.path(table, "script", at, 'script = "scripts/setup.sh"');
      if (script !== undefined && when) steps.push({ kind: "script", path: resolvePath(script), when });
      return;
    }
    const command = reader.string(table, "run", at, STEP_EXAMPLE, true);
    // The command travels to the guest's shell as text: a NUL byte would cut it short there.
    if (command?.includes("\0")) {
      reader.fail(joinPath(at, "run"), "must not contain NUL characters", STEP_EXAMPLE);
      return;
    }
    if (command !== undefined && when) steps.push({ kind: "run", command, when });
  });
  return steps;
}

function readWhen(
  table: Record<string, unknown>,
  at: string,
  reader: FieldReader,
): ProvisionWhen | undefined {
  const text = reader.string(table, "when", at, WHEN_EXAMPLE);
  if (text === undefined) return table.when === undefined ? "once" : undefined;
  if (text === "once" || text === "always") return text;
  return reader.fail(
    joinPath(at, "when"),
    `must be "once" or "always", not ${JSON.stringify(text)}`,
    WHEN_EXAMPLE,
  );
}
