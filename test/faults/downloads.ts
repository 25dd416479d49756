import type { ChildProcess } from "node:child_process";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { FixtureServer } from "../support/http-server.js";
import {
  fileSize,
  guestCatalog,
  IMAGE_DIR,
  type ServedImage,
  sameDiskAsGuest,
  serveGuestImage,
  writeJson,
} from "./fixtures.js";
import {
  type CaseContext,
  castraBin,
  errorLine,
  exitOf,
  hasStackTrace,
  type RunResult,
  type Scenario,
  until,
} from "./harness.js";

const MIB = 1024 * 1024;

/** A project with no castra.toml (so its VM uses alpine-minimal@v1) and a catalog serving the test guest. */
export interface ImageProject {
  server: FixtureServer;
  served: ServedImage;
  project: string;
  env: NodeJS.ProcessEnv;
  imageDir: string;
}

export async function imageProject(ctx: CaseContext): Promise<ImageProject> {
  const server = await ctx.server();
  const served = await serveGuestImage(server);
  const catalog = await writeJson(join(ctx.root, "catalog.json"), await guestCatalog(server.origin));
  const project = await ctx.dir("project");
  return { server, served, project, env: { CASTRA_CATALOG: catalog }, imageDir: join(project, IMAGE_DIR) };
}

/** Every download case goes through the zero-config path: `castra up` in a directory without castra.toml. */
const FETCH_ARGS = ["up"];
const FETCH = "castra up";

function fetchImage(
  ctx: CaseContext,
  p: ImageProject,
  env: NodeJS.ProcessEnv = {},
  onSpawn?: (child: ChildProcess) => void,
): Promise<RunResult> {
  return ctx.castra(FETCH_ARGS, { cwd: p.project, env: { ...p.env, ...env }, onSpawn, timeoutMs: 180_000 });
}

/** After a successful `up`, the VM is stopped again so the scenario ends with nothing running. */
async function stopIfBooted(ctx: CaseContext, p: ImageProject): Promise<void> {
  await ctx.castra(["down", "--timeout", "5"], { cwd: p.project, env: p.env });
}

/** `castra images verify` plus a byte-for-byte comparison of the converted disk with the guest's raw disk. */
export async function verified(ctx: CaseContext, p: ImageProject): Promise<boolean> {
  const verify = await ctx.castra(["images", "verify"], { cwd: p.project, env: p.env });
  return verify.code === 0 && (await sameDiskAsGuest(join(p.imageDir, "rootfs.qcow2")));
}

/** Kill castra with `signal` once the root disk's .partial holds at least 4 MiB, then resume it. */
function interruptedDownload(signal: "SIGINT" | "SIGKILL"): Scenario {
  const code = signal === "SIGINT" ? "exit 130" : "killed by SIGKILL";
  return {
    name: `${signal} mid-download`,
    timeoutMs: 120_000,
    async run(ctx) {
      const p = await imageProject(ctx);
      const partial = join(p.imageDir, "rootfs.qcow2.partial");
      // 16 MiB/s: the 64 MiB disk takes 4 s, so the signal lands while bytes are flowing.
      p.server.fault(p.served.vhd, { bytesPerSecond: 16 * MIB });
      const first = await fetchImage(ctx, p, {}, (child) => {
        void until(
          async () => (await fileSize(partial)) !== undefined && ((await fileSize(partial)) ?? 0) >= 4 * MIB,
          60_000,
        ).then(() => child.kill(signal));
      });
      const kept = (await fileSize(partial)) ?? 0;
      p.server.fault(p.served.vhd, undefined);
      p.server.requests.length = 0;
      const second = await fetchImage(ctx, p);
      const resumed = p.server.gets(p.served.vhd)[0];
      const ok = second.code === 0 && (await verified(ctx, p));
      await stopIfBooted(ctx, p);
      const interruptedOk =
        exitOf(first) === code && (signal === "SIGKILL" || /interrupted/i.test(first.stderr));
      ctx.check(
        `${signal} of \`${FETCH}\` mid-download, then run again`,
        `${code}, .partial kept; rerun sends Range from the kept bytes, sha256 verified`,
        `${exitOf(first)}, kept ${(kept / MIB).toFixed(1)} MiB; rerun ${exitOf(second)}, ` +
          `first GET Range ${resumed?.range ?? "none"} → ${resumed?.status ?? "-"}, verify ${ok ? "ok" : "FAILED"}`,
        interruptedOk && kept > 0 && resumed?.range === `bytes=${kept}-` && resumed.status === 206 && ok,
      );
    },
  };
}

const resets: Scenario = {
  name: "resets",
  timeoutMs: 90_000,
  async run(ctx) {
    const p = await imageProject(ctx);
    p.server.fault(p.served.vhd, { dropAfter: { bytes: 6 * MIB, times: 3 } });
    const result = await fetchImage(ctx, p);
    const gets = p.server.gets(p.served.vhd);
    const gaps = gets.slice(1).map((g, i) => (g.at - (gets[i]?.at ?? 0)) / 1000);
    const growing = gaps.length === 3 && gaps.every((gap, i) => gap >= 0.45 * 2 ** i);
    const ranged = gets.slice(1).every((g) => g.range?.startsWith("bytes=") && g.status === 206);
    const ok = result.code === 0 && (await verified(ctx, p));
    await stopIfBooted(ctx, p);
    ctx.check(
      "connection reset mid-stream 3 times in a row",
      "retries with growing backoff, each resuming with Range; then success, sha256 verified",
      `${exitOf(result)}, ${gets.length} GETs, retries ${ranged ? "with" : "WITHOUT"} Range, ` +
        `gaps ${gaps.map((g) => `${g.toFixed(1)} s`).join("/")}, verify ${ok ? "ok" : "FAILED"}`,
      ok && gets.length === 4 && ranged && growing,
    );
  },
};

const stall: Scenario = {
  name: "stall",
  timeoutMs: 60_000,
  async run(ctx) {
    const p = await imageProject(ctx);
    p.server.fault(p.served.vhd, { stallAfter: 2 * MIB });
    const result = await fetchImage(ctx, p, { CASTRA_STALL_TIMEOUT: "2" });
    const kept = await fileSize(join(p.imageDir, "rootfs.qcow2.partial"));
    ctx.check(
      "server stalls mid-stream (CASTRA_STALL_TIMEOUT=2)",
      "exit 69 within the stall timeout (+3 s start-up), .partial kept for resume",
      `${exitOf(result)} after ${(result.ms / 1000).toFixed(1)} s, .partial ${kept ?? "missing"} bytes: ${errorLine(result)}`,
      result.code === 69 && result.ms < 5000 && /stalled/.test(result.stderr) && kept === 2 * MIB,
    );
  },
};

/** `castra images pull`: the download layer alone, for cases that never need the VM booted. */
export function pullImage(
  ctx: CaseContext,
  p: ImageProject,
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 60_000,
) {
  return ctx.castra(["images", "pull"], { cwd: p.project, env: { ...p.env, ...env }, timeoutMs });
}

/** The body arrives whole, then the trailer section never ends: one field every second (issue 14, item 8). */
const endlessTrailers: Scenario = {
  name: "endless trailers",
  timeoutMs: 60_000,
  async run(ctx) {
    const p = await imageProject(ctx);
    p.server.fault(p.served.vhd, { trailerDrip: { everyMs: 1000 } });
    const result = await pullImage(ctx, p, {}, 40_000);
    const ok = result.code === 0 && (await verified(ctx, p));
    ctx.check(
      "chunked body, then `0` and a trailer field every second, forever",
      "the trailer section is cut (5 s at most): exit 0 within 20 s (a loaded host), sha256 verified",
      `${exitOf(result)} after ${(result.ms / 1000).toFixed(1)} s, verify ${ok ? "ok" : "FAILED"}: ${errorLine(result)}`,
      ok && result.ms < 20_000,
    );
  },
};

/** A server that never stalls but sends far below the minimum rate: the transfer's deadline ends it. */
const belowMinimumRate: Scenario = {
  name: "below the minimum rate",
  timeoutMs: 90_000,
  async run(ctx) {
    const p = await imageProject(ctx);
    p.server.fault(p.served.vhd, { bytesPerSecond: 2 * MIB });
    // Deadline: 2 s + 64 MiB at 16 MiB/s = 6 s; at 2 MiB/s the disk would take 32 s.
    const env = { CASTRA_STALL_TIMEOUT: "2", CASTRA_MIN_RATE: String(16 * 1024) };
    const result = await pullImage(ctx, p, env);
    const kept = (await fileSize(join(p.imageDir, "rootfs.qcow2.partial"))) ?? 0;
    ctx.check(
      "server sends 2 MiB/s without a pause (CASTRA_MIN_RATE=16384 KiB/s, CASTRA_STALL_TIMEOUT=2)",
      "exit 69 at the deadline (2 s + 64 MiB ÷ 16 MiB/s = 6 s; within 12 s with start-up), .partial kept",
      `${exitOf(result)} after ${(result.ms / 1000).toFixed(1)} s, .partial ${(kept / MIB).toFixed(1)} MiB: ${errorLine(result)}`,
      result.code === 69 && result.ms < 12_000 && kept > 0 && /minimum rate/.test(result.stderr),
    );
  },
};

/** A web page answered with 200 in place of the disk: with a Content-Length, and as a chunked captive portal. */
function htmlInsteadOfImage(portal: boolean): Scenario {
  return {
    name: portal ? "captive portal" : "html page",
    timeoutMs: 60_000,
    async run(ctx) {
      const p = await imageProject(ctx);
      const html = Buffer.from("<!doctype html><html><body><h1>Sign in to the Wi-Fi</h1></body></html>\n");
      p.server.fault(
        p.served.vhd,
        portal
          ? { body: html, ignoreRange: true, page: { contentType: "text/html; charset=utf-8" } }
          : { body: html },
      );
      const result = await fetchImage(ctx, p);
      const left = await readdir(p.imageDir).catch(() => []);
      ctx.check(
        portal
          ? "HTML page with 200, chunked and ignoring Range (captive portal)"
          : "HTML page with 200 and its own Content-Length",
        "exit 65, no .partial left behind",
        `${exitOf(result)}, image dir [${left.join(" ")}]: ${errorLine(result)}`,
        result.code === 65 && !left.some((n) => n.endsWith(".partial")) && !hasStackTrace(result.stderr),
      );
    },
  };
}

/**
 * Runs the fetch inside a private mount namespace with a `size` tmpfs over `.castra/images`, and lists what
 * the image directory holds before the namespace (and the tmpfs) goes away.
 */
async function fetchOnSmallDisk(ctx: CaseContext, p: ImageProject, size: string) {
  const images = join(p.project, ".castra", "images");
  await mkdir(images, { recursive: true });
  const script = [
    'mount -t tmpfs -o size="$2",mode=0700 tmpfs "$1" || exit 99',
    'shift 2; "$@"; rc=$?',
    'echo "@@left@@"; ls -A "$CASTRA_FAULTS_IMAGE_DIR" 2>/dev/null',
    "exit $rc",
  ].join("\n");
  const result = await ctx.exec(
    "unshare",
    ["-m", "sh", "-c", script, "sh", images, size, process.execPath, castraBin(), ...FETCH_ARGS],
    { cwd: p.project, env: { ...p.env, CASTRA_FAULTS_IMAGE_DIR: p.imageDir }, timeoutMs: 120_000 },
  );
  const [, listing = ""] = result.stdout.split("@@left@@\n");
  return { result, left: listing.split("\n").filter(Boolean) };
}

function diskFull(phase: "download" | "conversion"): Scenario {
  return {
    name: `disk full during ${phase}`,
    timeoutMs: 90_000,
    async run(ctx) {
      const p = await imageProject(ctx);
      // Download: 24 MiB for a 64 MiB disk. Conversion: every download fits, the 1 MiB qcow2 does not.
      const size = phase === "download" ? "24m" : `${Math.ceil(p.served.totalBytes / 4096) * 4 + 256}k`;
      const { result, left } = await fetchOnSmallDisk(ctx, p, size);
      const finals = left.filter((n) =>
        ["rootfs.qcow2", "vmlinuz", "initramfs.cpio.gz", "manifest.json"].includes(n),
      );
      const temporaries = left.filter((n) => n.endsWith(".tmp.partial"));
      const hint = /hint: free some space/.test(result.stderr);
      ctx.check(
        `disk full during ${phase} (tmpfs ${size} over .castra/images)`,
        "exit 74 with a hint to free space; no final file, no manifest",
        `${exitOf(result)}, hint ${hint ? "yes" : "MISSING"}, left [${left.join(" ")}]: ${errorLine(result)}`,
        result.code === 74 &&
          hint &&
          finals.length === 0 &&
          temporaries.length === 0 &&
          !hasStackTrace(result.stderr),
      );
    },
  };
}

export const downloadScenarios: Scenario[] = [
  interruptedDownload("SIGINT"),
  interruptedDownload("SIGKILL"),
  resets,
  stall,
  endlessTrailers,
  belowMinimumRate,
  htmlInsteadOfImage(false),
  htmlInsteadOfImage(true),
  diskFull("download"),
  diskFull("conversion"),
];
