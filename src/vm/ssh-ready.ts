import { spawn } from "node:child_process";
import type { Project, VmConfig } from "../config/model.js";
import { InterruptedError, LaunchError } from "../errors.js";
import { sleep } from "../host/process.js";
import { findOnPath } from "../host/tools.js";
import { buildSshArgs } from "../ssh/client.js";
import { hostKeyMismatchError } from "../ssh/known-hosts.js";
import { sharedLoginTarget } from "./guest-session.js";
import type { VmRunRecord } from "./state.js";

/** Between two logins that failed: a guest's SSH server comes up seconds after its login prompt under TCG. */
const RETRY_MS = 500;

export type SshReadiness = { by: "ssh"; elapsedMs: number } | { by: "unchecked"; reason: string };

/**
 * Waits until the guest's SSH server accepts the project key: `ssh … true` as `castra ssh` would run it, again
 * and again, within `timeoutMs`. The time is counted from QEMU's start, like the boot's. Without an `ssh`
 * client nothing can be checked (nor used): that is said, not waited for.
 */
export async function waitForSsh(
  project: Project,
  vm: VmConfig,
  record: VmRunRecord,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<SshReadiness> {
  const endpoint = record.ssh;
  const ssh = await findOnPath("ssh");
  if (!endpoint) return { by: "unchecked", reason: "it has no SSH forward" };
  if (!ssh) return { by: "unchecked", reason: "no ssh client is installed" };
  const target = sharedLoginTarget(project, vm, endpoint);
  const where = { alias: target.hostKeyAlias, knownHostsPath: target.knownHostsPath, vmName: vm.name };
  const args = buildSshArgs({ ...target, command: ["true"] });
  const started = Date.parse(record.startedAt) || Date.now();
  const deadline = Date.now() + options.timeoutMs;
  let lastError = "";
  for (;;) {
    if (options.signal?.aborted)
      throw new InterruptedError("Interrupted while waiting for the VMs' SSH servers");
    const attempt = await runQuietly(ssh, args);
    if (attempt.code === 0) return { by: "ssh", elapsedMs: Date.now() - started };
    const mismatch = hostKeyMismatchError(attempt.stderr, where);
    if (mismatch) throw mismatch;
    lastError = attempt.stderr.trim().split("\n").at(-1) ?? lastError;
    if (Date.now() + RETRY_MS >= deadline) break;
    await sleep(RETRY_MS);
  }
  throw new LaunchError(`vm ${vm.name} booted, but its SSH server did not accept the project key in time`, {
    detail: `ssh to ${endpoint.user}@${endpoint.host}:${endpoint.port} kept failing${lastError ? `: ${lastError}` : ""}.`,
    hint: `it is still running: \`castra logs ${vm.name}\` shows its console; if the image has no SSH server, set ssh = false for vm ${vm.name} in castra.toml`,
  });
}

function runQuietly(file: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4096);
    });
    child.once("error", (err) => resolve({ code: 255, stderr: err.message }));
    child.once("close", (code) => resolve({ code: code ?? 255, stderr }));
  });
}
