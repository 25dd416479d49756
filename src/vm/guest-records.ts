import { mkdir, stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { Project, VmConfig } from "../config/model.js";
import { fsError } from "../errors.js";
import { readJsonFile, writeJsonAtomic } from "../host/files.js";
import { mountsRecordPath, vmPaths } from "./paths.js";

/**
 * What castra recorded about the inside of a guest: the shares `up` mounted, and what provisioning ran.
 * Read by `status` too, so this module loads nothing heavy (no ssh, no crypto).
 */

/** `run/<vm>-mounts.json`: written after mounting; shown by `status` while that QEMU runs. */
export interface MountsRecord {
  /** The run record's start time: a record from an earlier run of the VM is ignored. */
  startedAt: string;
  shares: { tag: string; guest: string; mounted: boolean; reason?: string }[];
}

/** The overlay a provisioning record belongs to: a new overlay is a new guest with nothing done. */
export interface OverlayIdentity {
  ino: number;
  birthtimeMs: number;
}

/** `.castra/provision/<vm>.json`: what ran in this VM's overlay. */
export interface ProvisionRecord {
  overlay: OverlayIdentity;
  /** `once` steps that succeeded: their digest, and when. */
  done: Record<string, string>;
  /** The latest run: `castra status` shows a failure until a later run succeeds. */
  last?: { at: string; ok: boolean; failed?: { index: number; label: string; exitCode: number } };
}

/** What `up` recorded about the shares of the QEMU that started at `startedAt`; undefined when nothing. */
export async function readMountsRecord(
  project: Pick<Project, "stateDir">,
  vm: Pick<VmConfig, "name">,
  startedAt: string,
): Promise<MountsRecord | undefined> {
  const record = await readJsonFile<MountsRecord>(mountsRecordPath(project, vm));
  return record?.startedAt === startedAt && Array.isArray(record.shares) ? record : undefined;
}

/** The VM's provisioning record when it belongs to its current overlay; else undefined. */
export async function readProvisionRecord(
  project: Pick<Project, "stateDir">,
  vm: Pick<VmConfig, "name" | "overlay">,
): Promise<ProvisionRecord | undefined> {
  const record = await readJsonFile<ProvisionRecord>(vmPaths(project, vm).provisionRecord);
  if (
    !record ||
    typeof record.overlay !== "object" ||
    record.overlay === null ||
    typeof record.done !== "object"
  )
    return undefined;
  const overlay = await overlayIdentity(vm.overlay);
  const same = record.overlay.ino === overlay.ino && record.overlay.birthtimeMs === overlay.birthtimeMs;
  return same ? record : undefined;
}

export async function saveProvisionRecord(
  project: Pick<Project, "stateDir">,
  vm: Pick<VmConfig, "name">,
  record: ProvisionRecord,
): Promise<void> {
  const path = vmPaths(project, vm).provisionRecord;
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fsError(err, "create the provisioning directory", dirname(path));
  }
  await writeJsonAtomic(path, record);
}

export async function overlayIdentity(overlay: string): Promise<OverlayIdentity> {
  const info = await stat(overlay).catch(() => undefined);
  return { ino: info?.ino ?? 0, birthtimeMs: info?.birthtimeMs ?? 0 };
}
