import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { UnavailableError, UsageError } from "../errors.js";

export type Accelerator = "kvm" | "tcg";
export type AccelChoice = Accelerator | "auto";

export const ACCEL_CHOICES: readonly AccelChoice[] = ["auto", "kvm", "tcg"];

export interface AccelDecision {
  accel: Accelerator;
  /** Set when `auto` had to fall back to TCG. */
  warning?: string;
}

/** `--accel` wins over CASTRA_ACCEL, which wins over `auto`. */
export async function chooseAccelerator(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
  kvmDevice = "/dev/kvm",
): Promise<AccelDecision> {
  const fromEnv = env.CASTRA_ACCEL?.trim() || undefined;
  const choice = flag ?? fromEnv ?? "auto";
  if (!ACCEL_CHOICES.includes(choice as AccelChoice)) {
    const source = flag !== undefined ? "--accel" : "CASTRA_ACCEL";
    throw new UsageError(`${source} must be auto, kvm or tcg, not ${JSON.stringify(choice)}`, {
      hint: `use --accel tcg (portable) or --accel kvm (fast, needs /dev/kvm)`,
    });
  }
  if (choice === "kvm" && !(await kvmUsable(kvmDevice))) {
    const source = flag !== undefined ? "--accel kvm" : "CASTRA_ACCEL=kvm";
    throw new UnavailableError(`${source}, but KVM is not usable here`, {
      detail: `${kvmDevice} is missing, or not readable and writable by you.`,
      hint: "use --accel tcg (or auto), or give yourself access to /dev/kvm (e.g. the kvm group); `castra doctor` checks the host",
    });
  }
  if (choice !== "auto") return { accel: choice as Accelerator };
  if (await kvmUsable(kvmDevice)) return { accel: "kvm" };
  return {
    accel: "tcg",
    warning: `KVM is not available (${kvmDevice} is not readable and writable): using TCG emulation, which is much slower (\`castra doctor\` says why)`,
  };
}

async function kvmUsable(device: string): Promise<boolean> {
  try {
    await access(device, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
