import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { type Bench, castraArgv, castraEnv, newProject, runCastra } from "../lib/castra.js";
import { facts, makeFixedVhd, writeCatalog, writeDiskFile } from "../lib/fixtures.js";
import { compare, series } from "../lib/measure.js";
import { mustRun, peakRss } from "../lib/procs.js";
import type { RowResult } from "../lib/report.js";
import { type StaticServer, startStaticServer } from "../lib/server.js";

const MIB = 1024 * 1024;
const SIZE = 512 * MIB;
const MB = 1e6;

/** Rows 4, 5 and 6: downloads from one local server, against curl and the shell pipeline. */
export async function downloadRows(bench: Bench): Promise<{ rows: RowResult[]; server: string }> {
  bench.log("download: writing the 512 MiB artifact and the 512 MiB VHD");
  const www = join(bench.work, "www");
  await mkdir(www);
  await writeDiskFile(join(www, "artifact.bin"), SIZE);
  // Half data, half zeros, like a real disk image: the qcow2 keeps only the data.
  const raw = join(bench.work, "pipeline.raw");
  await writeDiskFile(raw, SIZE, SIZE / 2);
  await makeFixedVhd(raw, join(www, "disk.vhd"));
  await rm(raw);
  const server = await startStaticServer(www);
  try {
    const [throughput, rss] = await downloadVsCurl(bench, server);
    return { rows: [throughput, rss, await pipelineVsShell(bench, server)], server: server.description };
  } finally {
    await server.close();
  }
}

/** Empties the page cache's dirty pages between samples, so one sample's writeback never slows the next. */
async function settle(...paths: string[]): Promise<void> {
  for (const path of paths) await rm(path, { recursive: true, force: true });
  await mustRun(["sync"]);
}

async function downloadVsCurl(bench: Bench, server: StaticServer): Promise<[RowResult, RowResult]> {
  const artifact = await facts(join(bench.work, "www", "artifact.bin"));
  const url = `${server.origin}/artifact.bin`;
  const catalog = await writeCatalog(join(bench.work, "download.catalog.json"), "bench-download", [
    { kind: "root_disk", file: artifact, url, final_name: "disk.img" },
  ]);
  const dir = await newProject(bench, "download");
  const env = castraEnv(catalog);
  const curlDir = join(bench.work, "curl");
  await mkdir(curlDir);
  const curlOut = join(curlDir, "artifact.bin");
  const curlArgv = ["curl", "-sS", "--fail", "-o", curlOut, url];
  const peaks: number[] = [];
  const mbPerSecond = (ms: number) => artifact.size / MB / (ms / 1000);
  // The same command on a cached image: castra's fixed cost (node, modules, catalog, lock), no transfer.
  const cachedDir = await newProject(bench, "download-cached");
  await mustRun(castraArgv(bench, ["images", "pull", "bench-download@v1"]), { cwd: cachedDir, env });

  bench.log(`download: ${bench.warmup} warm-up + ${bench.runs} runs of castra images pull and curl -o`);
  const [castra, curl, curlVerified, cached] = await compare(
    [
      {
        name: "castra",
        sample: async () => {
          await settle(join(dir, ".castra"));
          let peak = 0;
          let sampler: NodeJS.Timeout | undefined;
          const result = await runCastra(bench, ["images", "pull", "bench-download@v1"], {
            cwd: dir,
            env,
            onSpawn: (child) => {
              // VmHWM is the high-water mark: the last reading before exit is the peak of the whole run.
              sampler = setInterval(async () => {
                peak = Math.max(peak, (await peakRss(child.pid as number)) ?? 0);
              }, 20);
            },
          });
          clearInterval(sampler);
          if (result.code !== 0) throw new Error(`castra images pull failed:\n${result.stderr}`);
          peaks.push(peak / MB);
          return mbPerSecond(result.ms);
        },
      },
      {
        name: "curl",
        sample: async () => {
          await settle(curlOut);
          return mbPerSecond((await mustRun(curlArgv)).ms);
        },
      },
      {
        // The same work as castra: download, then verify the sha256 (openssl uses the SHA extensions).
        name: "curl, then openssl dgst",
        sample: async () => {
          await settle(curlOut);
          const started = performance.now();
          await mustRun(curlArgv);
          await mustRun(["openssl", "dgst", "-sha256", curlOut]);
          return mbPerSecond(performance.now() - started);
        },
      },
      {
        name: "castra, cache hit",
        sample: async () =>
          (await mustRun(castraArgv(bench, ["images", "pull", "bench-download@v1"]), { cwd: cachedDir, env }))
            .ms,
      },
    ],
    { warmup: bench.warmup, runs: bench.runs },
  );
  await settle(join(dir, ".castra"), curlOut, join(cachedDir, ".castra"));
  const fixedMs = cached.median;
  const castraMs = (artifact.size / MB / castra.median) * 1000;
  const streaming = mbPerSecond(castraMs - fixedMs);
  return [
    {
      id: 4,
      figure: "download of a 512 MiB artifact (`castra images pull`), throughput",
      // The same work as castra: castra must hash every byte before the image is used (docs/design.md).
      baseline: "`curl -o`, then `openssl dgst -sha256`, same server",
      unit: "MB/s",
      castra,
      base: curlVerified,
      goal: { kind: "throughput-ratio", min: 0.9 },
      note:
        `castra's fixed cost (the same pull on a cached image) is ${fixedMs.toFixed(0)} ms; without it castra ` +
        `streams at ${streaming.toFixed(0)} MB/s, ${(streaming / curl.median).toFixed(2)}× curl. ` +
        `\`curl -o\` alone (no verification) reaches ${curl.median.toFixed(0)} MB/s: castra is ` +
        `${(castra.median / curl.median).toFixed(2)}× that`,
    },
    {
      id: 5,
      figure: "peak RSS of castra during that download",
      baseline: "—",
      unit: "MB",
      castra: series(peaks.slice(-bench.runs)),
      goal: { kind: "value", max: 120, unit: "MB" },
    },
  ];
}

/** Row 6: download + verify + strip footer + convert, against the same steps as separate tools. */
async function pipelineVsShell(bench: Bench, server: StaticServer): Promise<RowResult> {
  const vhd = await facts(join(bench.work, "www", "disk.vhd"));
  const url = `${server.origin}/disk.vhd`;
  const catalog = await writeCatalog(join(bench.work, "pipeline.catalog.json"), "bench-pipeline", [
    {
      kind: "root_disk",
      file: vhd,
      url,
      final_name: "rootfs.qcow2",
      transforms: [
        { type: "strip_vhd_footer" },
        { type: "qemu_img_convert", from: "raw", to: "qcow2", output: "rootfs.qcow2" },
      ],
    },
  ]);
  const dir = await newProject(bench, "pipeline");
  const env = castraEnv(catalog);
  const shellDir = join(bench.work, "shell");
  await mkdir(shellDir);
  const download = join(shellDir, "disk.vhd");
  const output = join(shellDir, "rootfs.qcow2");
  const steps = (hasher: string[]) => [
    ["curl", "-sS", "--fail", "-o", download, url],
    [...hasher, download],
    ["truncate", "-s", "-512", download],
    ["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", download, output],
  ];
  const shell = (hasher: string[]) => async () => {
    await settle(download, output);
    const started = performance.now();
    for (const step of steps(hasher)) await mustRun(step);
    return performance.now() - started;
  };

  bench.log(
    `pipeline: ${bench.warmup} warm-up + ${bench.runs} runs of castra images pull and the shell steps`,
  );
  const [castra, coreutils, openssl] = await compare(
    [
      {
        name: "castra",
        sample: async () => {
          await settle(join(dir, ".castra"));
          const result = await runCastra(bench, ["images", "pull", "bench-pipeline@v1"], { cwd: dir, env });
          if (result.code !== 0) throw new Error(`castra images pull failed:\n${result.stderr}`);
          return result.ms;
        },
      },
      { name: "shell", sample: shell(["sha256sum"]) },
      // coreutils' sha256sum may lack the SHA extensions OpenSSL uses: the stricter floor hashes with openssl.
      { name: "shell with openssl", sample: shell(["openssl", "dgst", "-sha256"]) },
    ],
    { warmup: bench.warmup, runs: bench.runs },
  );
  await settle(join(dir, ".castra"), download, output);
  return {
    id: 6,
    figure: "cold pipeline: download + verify + strip footer + convert, 512 MiB VHD",
    baseline: "`curl`; `sha256sum`; `truncate`; `qemu-img convert`",
    unit: "ms",
    castra,
    base: coreutils,
    goal: { kind: "time-ratio", max: 1.1 },
    note:
      `with \`openssl dgst -sha256\` in place of \`sha256sum\`, the shell steps take ${openssl.median.toFixed(0)} ms: ` +
      `castra is ${(castra.median / openssl.median).toFixed(2)}× that`,
  };
}
