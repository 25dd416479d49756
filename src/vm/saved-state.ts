import { rm, stat } from "node:fs/promises";
import { readJsonFile, writeJsonAtomic } from "../host/files.js";
import type { SshEndpoint } from "./guest-access.js";

/** The internal qcow2 snapshot that holds a suspended VM's memory and devices, inside its overlay. */
export const SUSPEND_SNAPSHOT = "castra-suspend";

/**
 * What a saved state must match to be resumed: the guest's hardware as QEMU's argv describes it, and the
 * QEMU that wrote it. Ports, sockets and log paths are left out: they are the host's side only.
 */
export interface MachineFingerprint {
  qemuVersion: string;
  cpus: number;
  memoryBytes: number;
  /** sha256 of every argument that shapes the guest (machine, accelerator, CPU, disks, devices, boot). */
  hardware: string;
}

/** `<overlay>.suspend.json`: written only once the state is saved and QEMU has exited, so a half-saved state is never seen. */
export interface SuspendRecord {
  savedAt: string;
  fingerprint: MachineFingerprint;
  /** The overlay right after QEMU exited: if it changes, the saved memory no longer matches the disk. */
  overlay: { size: number; mtimeMs: number };
  /** The snapshot's size in the overlay (memory and device state). */
  stateBytes: number;
  /** Where `castra ssh` reached the guest: reused on resume, so its address stays the same. */
  ssh?: SshEndpoint;
}

export function suspendRecordPath(overlay: string): string {
  return `${overlay}.suspend.json`;
}

export function readSuspendRecord(overlay: string): Promise<SuspendRecord | undefined> {
  return readJsonFile<SuspendRecord>(suspendRecordPath(overlay));
}

export function writeSuspendRecord(overlay: string, record: SuspendRecord): Promise<void> {
  return writeJsonAtomic(suspendRecordPath(overlay), record);
}

export async function removeSuspendRecord(overlay: string): Promise<void> {
  await rm(suspendRecordPath(overlay), { force: true });
}

/** The overlay's size and mtime, to tell later whether anything wrote to it. */
export async function overlayStamp(overlay: string): Promise<{ size: number; mtimeMs: number }> {
  const info = await stat(overlay);
  return { size: info.size, mtimeMs: info.mtimeMs };
}
