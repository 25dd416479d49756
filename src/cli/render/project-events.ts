import { displayPath } from "../../config/load.js";
import type { MountConfig } from "../../config/model.js";
import { formatBytes } from "../../host/bytes.js";
import type { ImageEvent } from "../../images/events.js";
import type { ProjectEvent } from "../../project/events.js";
import { brokerAddressShown } from "../../vm/guest-addresses.js";
import type { StopEvent, StoppedBy } from "../../vm/stop.js";
import type { IO, LiveRegion } from "../io.js";
import { renderImageEvents } from "./image-events.js";
import { narrowedNotice } from "./modes.js";
import { formatSeconds } from "./progress.js";
import { formatDate } from "./text.js";

export interface ProjectRenderer {
  onEvent(event: ProjectEvent): void;
  /** Leaves the live lines (one per booting VM) on screen; call once `up` or `down` has returned or failed. */
  done(): void;
}

/**
 * Renders `up` and `down` for people: a live line per booting VM on a terminal, one plain line per step
 * elsewhere (CI logs stay readable). Image events go to the image renderer.
 */
export function renderProjectEvents(io: IO): ProjectRenderer {
  const tty = io.err.isTTY;
  const c = io.err.color;
  let images: ((event: ImageEvent) => void) | undefined;
  let live: LiveRegion | undefined;
  const onEvent = (e: ProjectEvent) => {
    switch (e.type) {
      case "modes-narrowed":
        return io.info(narrowedNotice(e.stateDir, e.narrowed, io.cwd));
      case "lock-wait":
        return io.info(
          `Waiting for another castra (pid ${e.holder.pid}, ${e.holder.purpose}) to finish with this project…`,
        );
      case "already-live":
        return io.info(`${e.vm} is already ${e.state} (pid ${e.pid}): nothing to start`);
      case "settings-pending":
        return io.warn(
          `${e.vm} runs without what castra.toml now says: ${e.changes.join(", ")}; ` +
            `they take effect after \`castra down ${e.vm}\` and \`castra up ${e.vm}\``,
        );
      case "restarting-after-error":
        return io.warn(
          `${e.vm} stopped unexpectedly (QEMU pid ${e.pid} is gone): starting it again on the same overlay`,
        );
      case "accel-fallback":
        return io.warn(e.reason);
      case "image":
        images ??= renderImageEvents(io);
        return images(e.event);
      case "check-forced":
        return io.warn(`${e.problem} (continuing because of --force)`);
      case "guest-access-warning":
        return io.warn(e.message);
      case "overlay-created":
        return io.info(`Created overlay ${displayPath(e.overlay, io.cwd)} on ${displayPath(e.base, io.cwd)}`);
      case "vm-starting":
        return io.info(`Starting ${e.vm} (${e.accel}, ${e.cpus} CPU, ${formatBytes(e.memoryBytes)})…`);
      case "vm-resuming":
        return io.info(`Resuming ${e.vm} from its state saved ${when(e.savedAt)}…`);
      case "saved-state-discarded":
        return io.info(`${e.vm}: discarded its suspended state (saved ${when(e.savedAt)})`);
      case "skipped":
        return io.info(`${e.vm} is ${e.state.replace("_", " ")}: nothing to ${e.action}`);
      case "suspending":
        return io.info(
          `Suspending ${e.vm} (pid ${e.pid}): saving ${formatBytes(e.memoryBytes)} of memory and its devices…`,
        );
      case "vm-suspended":
        return io.success(
          `${e.vm} suspended in ${formatSeconds(e.elapsedMs / 1000)} (saved state ${formatBytes(e.stateBytes)})`,
        );
      case "vm-destroyed":
        return io.success(
          `${e.vm} destroyed${e.removed.length > 0 ? `: removed ${e.removed.map((f) => displayPath(f, io.cwd)).join(", ")}` : " (it had no disk yet)"}`,
        );
      case "broker-started":
        return io.info(`Host broker started: guests reach it at ${brokerAddressShown(e.port)}`);
      case "waiting":
        live ??= io.live();
        if (!tty) io.info(`Waiting for ${e.vm} to be ready (${waitingFor(e.readyPattern)})…`);
        return;
      case "booting":
        return live?.set(
          e.vm,
          `${c.cyan("…")} ${e.vm}: booting, ${formatSeconds(e.elapsedMs / 1000)} (waiting for ${waitingFor(e.readyPattern)})`,
        );
      case "waiting-ssh":
        if (!tty) return io.info(`${e.vm} booted (${booted(e)}); waiting for its SSH server…`);
        return live?.set(e.vm, `${c.cyan("…")} ${e.vm}: booted (${booted(e)}), waiting for its SSH server`);
      case "ready": {
        const ssh =
          e.ssh?.by === "ssh"
            ? `; SSH answers after ${formatSeconds(e.ssh.elapsedMs / 1000)}`
            : e.ssh
              ? `; SSH not checked: ${e.ssh.reason}`
              : "";
        const line = `${e.vm} is ready (${booted(e)}${ssh})`;
        if (tty) return live?.set(e.vm, `${c.green("✓")} ${line}`);
        return io.success(line);
      }
      case "shares-mounted":
        return io.success(
          `${e.vm}: mounted ${e.shares.map((m) => shareLine(io, m)).join(", ")} (${formatSeconds(e.elapsedMs / 1000)})`,
        );
      case "share-failed":
        io.warn(`${e.vm}: ${e.guest} (mount tag ${e.tag}) is not mounted: ${e.reason}`);
        return io.info(`  to mount it by hand, run as root in the guest: ${e.manual}`);
      case "provisioning": {
        const waiting = [
          ...(e.done > 0 ? [`${e.done} already done`] : []),
          ...(e.bootOnly > 0 ? [`${e.bootOnly} run at boot only, and this was a resume`] : []),
        ].join(", ");
        if (e.run > 0)
          return io.info(`Provisioning ${e.vm}: ${plural(e.run, "step")}${waiting ? ` (${waiting})` : ""}`);
        return io.info(
          `${e.vm}: no provisioning step to run (${waiting}; \`castra provision\` runs them all)`,
        );
      }
      case "provision-step":
        return io.info(`${e.vm}: step ${e.index + 1}/${e.total} ${e.label}`);
      case "provision-output":
        return io.info(`[${e.vm}] ${e.line}`);
      case "provisioned":
        return io.success(
          `${e.vm} provisioned: ${plural(e.ran, "step")} in ${formatSeconds(e.elapsedMs / 1000)}`,
        );
      case "setup-deferred":
        return io.info(
          `Not waiting (--no-wait): mounts and provisioning of ${e.vms.join(", ")} wait for \`castra provision\` once ready`,
        );
      case "stale-cleared":
        return io.info(
          e.cause === "exited"
            ? `${e.vm} had already stopped unexpectedly (QEMU pid ${e.pid} is gone): removed its runtime files`
            : `${e.vm} was not running (pid ${e.pid} is another program now): removed its stale pid file`,
        );
      case "stopping":
        return io.info(`Stopping ${e.vm} (pid ${e.pid}): ${stopPlan(e)}…`);
      case "stop-step":
        if (e.step.kind === "waiting") return powerOffProgress(e.vm, e.step.waitedMs, e.step.timeoutMs);
        return stopStep(io, e.vm, e.step);
      case "stopped":
        return io.success(stoppedLine(e.vm, e.by, e.elapsedMs));
      case "broker-stopped":
        return io.success("Host broker stopped");
    }
  };
  /** Seconds waited for a guest to power off: a live line on a terminal, a line every 10 s elsewhere. */
  const powerOffProgress = (vm: string, waitedMs: number, timeoutMs: number) => {
    const text = `${vm}: waiting for the guest to power off, ${Math.round(waitedMs / 1000)} s of ${timeoutMs / 1000} s`;
    if (tty) {
      live ??= io.live();
      return live.set(`stop:${vm}`, `${c.cyan("…")} ${text}`);
    }
    if (Math.round(waitedMs / 1000) % 10 === 0) io.info(text);
  };
  return { onEvent, done: () => live?.done() };
}

function stopPlan(e: Extract<ProjectEvent, { type: "stopping" }>): string {
  if (e.force) return "SIGTERM now (--force)";
  if (e.timeoutMs === 0) return "SIGTERM now (--timeout 0)";
  if (e.booting) return `still booting, so ACPI power-down gets only ${e.timeoutMs / 1000} s`;
  return `ACPI power-down, waiting up to ${e.timeoutMs / 1000} s`;
}

/** "/project ← . (read-only)": where a share appears in the guest, and what it is on the host. */
function shareLine(io: IO, mount: MountConfig): string {
  const host = mount.host === io.cwd ? "." : displayPath(mount.host, io.cwd);
  return `${mount.guest} ← ${host} (${mount.writable ? "writable" : "read-only"})`;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** "2026-11-30 19:55": when a state was saved, in local time. */
function when(iso: string): string {
  return iso ? formatDate(new Date(iso)) : "earlier";
}

/** "login: seen after 12.3 s" or "running after 2.1 s". */
function booted(e: { readiness: { by: string; elapsedMs: number }; readyPattern?: string }): string {
  const how = e.readiness.by === "pattern" ? `${e.readyPattern} seen` : "running";
  return `${how} after ${formatSeconds(e.readiness.elapsedMs / 1000)}`;
}

function waitingFor(readyPattern: string | undefined): string {
  return readyPattern ? `"${readyPattern}" on its serial console` : "QEMU to report it running";
}

function stopStep(io: IO, name: string, step: StopEvent) {
  switch (step.kind) {
    case "powerdown-sent":
      return;
    case "powerdown-failed":
      return io.warn(`${name}: QMP did not take the power-down request (${step.reason}); sending SIGTERM`);
    case "interrupted":
      return io.warn(`${name}: interrupted: stopping it now with SIGTERM instead of waiting`);
    case "waiting":
      return;
    case "powerdown-timeout":
      return io.warn(
        `${name}: the guest did not power off within ${step.waitedMs / 1000} s; sending SIGTERM`,
      );
    case "signal":
      if (step.signal === "SIGKILL") io.warn(`${name}: QEMU is still running after SIGTERM; sending SIGKILL`);
      return;
  }
}

function stoppedLine(name: string, by: StoppedBy, ms: number): string {
  const after = `after ${(ms / 1000).toFixed(1)} s`;
  switch (by) {
    case "acpi":
      return `${name} powered off (ACPI) ${after}`;
    case "sigterm":
      return `${name} stopped by SIGTERM ${after}`;
    case "sigkill":
      return `${name} killed by SIGKILL ${after}`;
    case "exited":
      return `${name} stopped ${after}`;
  }
}
