import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { KVM_PROBE_TIMEOUT_MS, probeAccelerator } from "../vm/kvm-probe.js";
import { type DoctorCheck, ok, warn } from "./check.js";

export interface AcceleratorInput {
  kvmDevice: string;
  /** qemu-system-x86_64, when found: without it nothing can be probed. */
  qemuSystem?: string;
  env: NodeJS.ProcessEnv;
  probeTimeoutMs?: number;
}

const NAME = "accelerator";

/**
 * KVM when its device is usable and a test guest really runs under it within a second; otherwise TCG, with
 * the reason and what would make KVM work. Never a failure: castra runs under TCG, only slower.
 */
export async function checkAccelerator(input: AcceleratorInput): Promise<DoctorCheck> {
  const { kvmDevice } = input;
  const forced = input.env.CASTRA_ACCEL?.trim();
  const note = forced ? ` (CASTRA_ACCEL=${forced} decides for castra up)` : "";
  const tcg = (reason: string, fix: string) =>
    warn(NAME, `TCG: ${reason}, so VMs run emulated (much slower)${note}`, fix);
  const device = await deviceAccess(kvmDevice);
  if (device === "missing") {
    return tcg(
      `${kvmDevice} does not exist`,
      "enable virtualization (VT-x/AMD-V) in the firmware and load kvm_intel or kvm_amd; inside a VM, enable nested virtualization",
    );
  }
  if (device === "denied") {
    return tcg(
      `${kvmDevice} is not readable and writable by you`,
      "add yourself to its group (`sudo usermod -aG kvm $USER`), then log in again",
    );
  }
  if (!input.qemuSystem) {
    return warn(
      NAME,
      `${kvmDevice} is usable, but without qemu-system-x86_64 nothing can be probed`,
      "install QEMU (see above)",
    );
  }
  const timeoutMs = input.probeTimeoutMs ?? KVM_PROBE_TIMEOUT_MS;
  const probe = await probeAccelerator(input.qemuSystem, "kvm", timeoutMs);
  if (probe.ran) return ok(NAME, `KVM: a test guest ran in ${probe.ms} ms${note}`);
  return tcg(
    `a KVM test guest did not run (${probe.reason})`,
    "`castra up` would pick KVM here and its guests would hang: run `castra up --accel tcg` or export CASTRA_ACCEL=tcg; check the host's KVM (dmesg, the kvm modules)",
  );
}

async function deviceAccess(path: string): Promise<"usable" | "missing" | "denied"> {
  try {
    await access(path, constants.R_OK | constants.W_OK);
    return "usable";
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? "missing" : "denied";
  }
}
