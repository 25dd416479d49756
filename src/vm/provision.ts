import { createHash } from "node:crypto";
import { mkdir, readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { displayPath } from "../config/load.js";
import type { Project, ProvisionStep, VmConfig } from "../config/model.js";
import { fsError, InputMissingError } from "../errors.js";
import { openPrivate } from "../host/private-files.js";
import type { GuestCommandResult } from "../ssh/guest-command.js";
import { overlayIdentity, type ProvisionRecord, readProvisionRecord } from "./guest-records.js";
import { type GuestSession, runInGuest } from "./guest-session.js";
import { vmPaths } from "./paths.js";

/** One `[[vms.provision]]` step, ready to run: what identifies it, and the script's bytes. */
export interface PlannedStep {
  index: number;
  step: ProvisionStep;
  /** sha256 of its kind and text (or script content): a `once` step whose digest is recorded does not run. */
  digest: string;
  /** How people see it: `run: apk add …` or `script: scripts/setup.sh`. */
  label: string;
  /** What the guest receives on stdin: the command's text, or the script's bytes. */
  input: Buffer;
}

export interface ProvisionPlan {
  steps: PlannedStep[];
  /** The record of this overlay (a fresh one when the overlay is new). */
  record: ProvisionRecord;
}

const LABEL_CHARS = 60;

/** Before anything starts: every `script` step's file exists (else exit 66). */
export async function checkScripts(project: Project, vm: VmConfig): Promise<void> {
  for (const step of vm.provision ?? []) if (step.kind === "script") await readScript(project, vm, step.path);
}

/** The VM's steps with their digests, and the record that applies to its current overlay. */
export async function planProvisioning(project: Project, vm: VmConfig): Promise<ProvisionPlan> {
  const steps: PlannedStep[] = [];
  for (const [index, step] of (vm.provision ?? []).entries()) {
    const input = step.kind === "run" ? Buffer.from(step.command) : await readScript(project, vm, step.path);
    const digest = createHash("sha256").update(`${step.kind}\0`).update(input).digest("hex");
    steps.push({ index, step, digest, label: stepLabel(project, step), input });
  }
  const saved = await readProvisionRecord(project, vm);
  return { steps, record: saved ?? { overlay: await overlayIdentity(vm.overlay), done: {} } };
}

/** `run: apk add --no-cache git` (its first line, shortened) or `script: scripts/setup.sh`. */
export function stepLabel(project: Pick<Project, "rootDir">, step: ProvisionStep): string {
  if (step.kind === "script") return `script: ${displayPath(step.path, project.rootDir)}`;
  const lines = step.command.trim().split("\n");
  const first = lines[0] ?? "";
  const cut = first.length > LABEL_CHARS ? `${first.slice(0, LABEL_CHARS - 1)}…` : first;
  return `run: ${cut}${lines.length > 1 && cut === first ? " …" : ""}`;
}

/** A command runs in the guest's shell; stdin is closed for it, as a provisioner has no one to ask. */
const RUN_SCRIPT = 'command=$(cat); exec sh -c "$command" castra-provision </dev/null';

/** A script is copied to a private temporary file and run there: by its #! line, else by sh. */
const SCRIPT_SCRIPT = `file=$(mktemp /tmp/castra-provision.XXXXXX) || exit 125
trap 'rm -f "$file"' EXIT
cat >"$file" && chmod 700 "$file" || exit 125
IFS= read -r first <"$file"
case $first in '#!'*) "$file" ;; *) sh "$file" ;; esac </dev/null`;

/**
 * Runs one step in the guest as root; its output goes to `onLine` and, with timestamps, to
 * `logs/<vm>-provision.log`. Resolves to its exit status (255: ssh could not run it) and last lines.
 */
export async function runProvisionStep(
  session: GuestSession,
  planned: PlannedStep,
  onLine: (line: string) => void,
): Promise<GuestCommandResult> {
  const log = await openProvisionLog(session);
  const write = (text: string) => log.write(`${new Date().toISOString()} ${text}\n`).catch(() => undefined);
  const total = session.vm.provision?.length ?? 0;
  const began = Date.now();
  try {
    await write(`step ${planned.index + 1}/${total} ${planned.label}`);
    const script = planned.step.kind === "run" ? RUN_SCRIPT : SCRIPT_SCRIPT;
    const result = (await runInGuest(session, {
      script,
      stdin: planned.input,
      onLine: (line) => {
        void write(`  ${line}`);
        onLine(line);
      },
    })) ?? { code: 127, tail: ["castra: ssh is not installed on this host"] };
    await write(
      `step ${planned.index + 1}/${total} exit ${result.code} after ${((Date.now() - began) / 1000).toFixed(1)} s`,
    );
    return result;
  } finally {
    await log.close();
  }
}

/** Appends, never following a link planted where the log should be. */
async function openProvisionLog(session: GuestSession) {
  const path = vmPaths(session.project, session.vm).provisionLog;
  const action = "open the provisioning log";
  await mkdir(dirname(path), { recursive: true, mode: 0o700 }).catch((err: unknown) => {
    throw fsError(err, action, path);
  });
  return openPrivate(path, "append", action);
}

async function readScript(project: Project, vm: VmConfig, path: string): Promise<Buffer> {
  const shown = displayPath(path, project.rootDir);
  try {
    const info = await stat(path);
    if (info.isFile()) return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      throw fsError(err, `read the script ${shown}`, path);
  }
  throw new InputMissingError(`provision script of vm ${vm.name}: ${shown} is not a file`, {
    detail: "castra copies this file into the guest and runs it there as root.",
    hint: `create ${shown}, or change script = … of that [[vms.provision]] step in castra.toml`,
  });
}
