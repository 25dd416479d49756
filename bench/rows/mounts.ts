import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Bench, castraArgv, castraEnv, down, mustCastra, newProject } from "../lib/castra.js";
import { sshGuestCatalog } from "../lib/guest-images.js";
import { compare, series } from "../lib/measure.js";
import { mustRun } from "../lib/procs.js";
import type { RowResult } from "../lib/report.js";

const MIB = 1024 * 1024;
const FILE_MIB = 256;
/** Microseconds of wall-clock time in the test guest (its busybox date has no %N). */
const GUEST_US =
  "us() { adjtimex | awk '/time.tv_sec:/ { s = $2 } /time.tv_usec:/ { u = $2 } END { printf \"%.0f\\n\", s * 1000000 + u }'; }";
const MANAGED = 'managed_image = { name = "alpine-minimal", version = "v1" }\nmemory = "512 MiB"';

/**
 * Rows 19–21: reading a 256 MiB file from /project in the guest against reading it on the host (page cache warm
 * on both sides), with castra's mount options and with QEMU's defaults; and the time `castra up` of an already
 * provisioned VM spends after the guest is ready (mounting, skipping its `once` step) against a VM with neither.
 */
export async function mountRows(bench: Bench): Promise<RowResult[]> {
  const env = castraEnv(await sshGuestCatalog(bench));
  const reads = await readRows(bench, env);
  return [...reads, await setupRow(bench, env)];
}

async function readRows(bench: Bench, env: NodeJS.ProcessEnv): Promise<RowResult[]> {
  const dir = await newProject(bench, "mount-read");
  await writeFile(join(dir, "castra.toml"), `[[vms]]\nname = "alpine"\n${MANAGED}\n`);
  await writeFile(join(dir, "big.bin"), randomBytes(FILE_MIB * MIB));
  await mustCastra(bench, ["up"], { cwd: dir, env });
  const ssh = (command: string) => mustRun(castraArgv(bench, ["ssh", "--", command]), { cwd: dir, env });
  // The guest's busybox dd reports no time: the guest's clock (adjtimex, microseconds) times it, on stderr.
  const guestRead = async () => {
    const { stderr } = await ssh(
      `${GUEST_US}; a=$(us); dd if=/project/big.bin of=/dev/null bs=1M 2>/dev/null; b=$(us); echo "us=$((b - a))" >&2`,
    );
    const us = Number(/^us=(\d+)$/m.exec(stderr)?.[1]);
    if (!us) throw new Error(`no time from the guest: ${stderr.trim()}`);
    return (FILE_MIB * MIB) / 1e6 / (us / 1e6);
  };
  const hostRead = async () =>
    ddRate((await mustRun(["dd", `if=${join(dir, "big.bin")}`, "of=/dev/null", "bs=1M"], {})).stderr);
  try {
    bench.log(
      `9p read: ${bench.warmup} warm-up + ${bench.runs} reads of ${FILE_MIB} MiB in the guest and on the host`,
    );
    const [chosen, host] = await compare(
      [
        { name: "guest", sample: guestRead },
        { name: "host", sample: hostRead },
      ],
      { warmup: bench.warmup, runs: bench.runs },
    );
    // QEMU's defaults on the guest side: no msize, no cache (the export is the same device).
    await ssh(
      "doas sh -c 'umount /project/.castra; umount /project; mount -t 9p -o ro,trans=virtio castra0 /project'",
    );
    const [plain, host2] = await compare(
      [
        { name: "guest", sample: guestRead },
        { name: "host", sample: hostRead },
      ],
      { warmup: bench.warmup, runs: bench.runs },
    );
    const row = (id: number, options: string, guest: typeof chosen, base: typeof host): RowResult => ({
      id,
      figure: `read ${FILE_MIB} MiB from /project in the guest, ${options} (TCG)`,
      baseline: "the same file read on the host (page cache warm)",
      unit: "MB/s",
      castra: guest,
      base,
      goal: { kind: "report" },
      note: `${((guest.median / base.median) * 100).toFixed(0)}% of the host's rate (dd bs=1M, MB/s as dd reports)`,
    });
    return [
      row(19, "castra's options (msize=512000, cache=mmap)", chosen, host),
      row(20, "QEMU's defaults (trans=virtio only)", plain, host2),
    ];
  } finally {
    await down(bench, dir, env, 10);
  }
}

/** MB/s from GNU dd's summary (`268435456 bytes (268 MB, 256 MiB) copied, 0.05 s, 5.1 GB/s`). */
function ddRate(output: string): number {
  const m = /(\d+) bytes .*copied, ([\d.]+) ?s/.exec(output);
  if (!m) throw new Error(`no rate in dd's output: ${output.trim()}`);
  return Number(m[1]) / 1e6 / Math.max(Number(m[2]), 1e-6);
}

async function setupRow(bench: Bench, env: NodeJS.ProcessEnv): Promise<RowResult> {
  const plain = await newProject(bench, "setup-none");
  const provisioned = await newProject(bench, "setup-mounted");
  await writeFile(join(plain, "castra.toml"), `[[vms]]\nname = "alpine"\n${MANAGED}\nmounts = []\n`);
  // The once step runs at the first up below and is recorded as done: every measured up skips it.
  await writeFile(
    join(provisioned, "castra.toml"),
    `[[vms]]\nname = "alpine"\n${MANAGED}\n[[vms.provision]]\nrun = "echo provisioned"\n`,
  );
  for (const dir of [plain, provisioned]) {
    await mustCastra(bench, ["up"], { cwd: dir, env });
    await down(bench, dir, env, 10);
  }
  const mountSeconds: number[] = [];
  const afterReady = (dir: string) => async () => {
    const { ms, readyMs, stderr } = await upUntilReady(bench, dir, env);
    const mounted = /mounted .* \((\d+\.\d) s\)$/m.exec(stderr)?.[1];
    if (mounted) mountSeconds.push(Number(mounted));
    await down(bench, dir, env, 10);
    return ms - readyMs;
  };
  bench.log(
    `setup: ${bench.warmup} warm-up + ${bench.runs} boots each of a VM with and without mount + once step`,
  );
  const [withSetup, without] = await compare(
    [
      { name: "mounted", sample: afterReady(provisioned) },
      { name: "none", sample: afterReady(plain) },
    ],
    { warmup: bench.warmup, runs: bench.runs },
  );
  return {
    id: 21,
    figure:
      "`castra up` of a provisioned VM: from ready to exit, with the /project mount and a done `once` step",
    baseline: "the same for a VM with neither (`mounts = []`, no steps)",
    unit: "ms",
    castra: withSetup,
    base: without,
    goal: { kind: "time-margin", maxMs: 300 },
    note: `castra's own figure for the mount (SSH login, doas, mount, tmpfs cover): median ${series(mountSeconds).median.toFixed(1)} s`,
  };
}

/** `castra up` to completion, with the moment its "is ready" line appeared (ms after spawn). */
async function upUntilReady(bench: Bench, dir: string, env: NodeJS.ProcessEnv) {
  let readyMs = Number.NaN;
  let started = 0;
  const result = await mustCastra(bench, ["up"], {
    cwd: dir,
    env,
    onSpawn: (child) => {
      started = performance.now();
      child.stderr?.on("data", (chunk: Buffer) => {
        if (Number.isNaN(readyMs) && chunk.includes("is ready")) readyMs = performance.now() - started;
      });
    },
  });
  if (Number.isNaN(readyMs)) throw new Error(`castra up printed no ready line:\n${result.stderr}`);
  return { ...result, readyMs };
}
