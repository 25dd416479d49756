import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Accelerator } from "./accel.js";

/** A host where KVM works starts and finishes the probe guest in a few hundred milliseconds. */
export const KVM_PROBE_TIMEOUT_MS = 1000;

/** The value the probe guest writes to isa-debug-exit; QEMU then exits with (value << 1) | 1. */
const PROBE_VALUE = 0x2a;
const PROBE_EXIT_CODE = (PROBE_VALUE << 1) | 1;
const DEBUG_EXIT_PORT = 0xf4;

/**
 * The whole guest: a 64 KiB firmware image (QEMU wants a multiple of 64 KiB) of `hlt`s whose reset vector,
 * its last 16 bytes, runs `mov al, 0x2a; out 0xf4, al; hlt; jmp $-3`.
 */
function probeFirmware(): Buffer {
  const image = Buffer.alloc(64 * 1024, 0xf4);
  const code = [0xb0, PROBE_VALUE, 0xe6, DEBUG_EXIT_PORT, 0xf4, 0xeb, 0xfd];
  Buffer.from(code).copy(image, image.length - 16);
  return image;
}

export type ProbeResult = { ran: true; ms: number } | { ran: false; reason: string };

/**
 * Boots a guest of seven instructions with `accel` and waits for it to ask QEMU to exit. A host whose KVM
 * hangs guests (QEMU starts, the guest never runs) is found out in `timeoutMs`; QEMU is then killed and
 * not waited for, since a process stuck in the kernel may outlive SIGKILL for a while.
 */
export async function probeAccelerator(
  qemuSystem: string,
  accel: Accelerator,
  timeoutMs = KVM_PROBE_TIMEOUT_MS,
): Promise<ProbeResult> {
  const dir = await mkdtemp(join(tmpdir(), "castra-kvm-probe-"));
  try {
    const firmware = join(dir, "probe.bin");
    await writeFile(firmware, probeFirmware());
    return await runProbe(qemuSystem, firmware, accel, timeoutMs);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function runProbe(qemuSystem: string, firmware: string, accel: Accelerator, timeoutMs: number) {
  const args = [
    ...["-machine", "q35", "-accel", accel, "-nodefaults", "-display", "none", "-m", "16"],
    ...[
      "-bios",
      firmware,
      "-device",
      `isa-debug-exit,iobase=0x${DEBUG_EXIT_PORT.toString(16)}`,
      "-no-reboot",
    ],
  ];
  const started = performance.now();
  return new Promise<ProbeResult>((resolve) => {
    const child = spawn(qemuSystem, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4096);
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      child.stderr?.destroy();
      child.unref();
      resolve({ ran: false, reason: `the test guest did not run within ${timeoutMs} ms` });
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      resolve({ ran: false, reason: `cannot run ${qemuSystem}: ${err.message}` });
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      if (code === PROBE_EXIT_CODE) resolve({ ran: true, ms: Math.round(performance.now() - started) });
      else resolve({ ran: false, reason: lastLine(stderr) || `QEMU exited with status ${code}` });
    });
  });
}

function lastLine(text: string): string {
  return (
    text
      .trim()
      .split("\n")
      .at(-1)
      ?.replace(/^qemu-system-x86_64: /, "") ?? ""
  );
}
