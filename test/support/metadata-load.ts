import { readdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { biosDiskWithAppend } from "./bios-disk.js";

/**
 * The metadata service under load from a real guest under TCG (the test guest's load tools, see
 * test/fixtures/README.md, "Metadata load tools"), measured from the host: the pairs the guest timed against
 * castra and against a plain HTTP server on the host, the memory of everything started for a flood of
 * connections, and how long a guest that never reads its user-data keeps anything alive.
 * Used by test/e2e/metadata-load.test.ts (bounds) and bench/rows/metadata.ts (goals).
 */
export interface MetadataLoadOptions {
  /** Runs `castra ...args` in the project; resolves its exit code and stderr. */
  castra(args: string[]): Promise<{ code: number | null; stderr: string }>;
  /** An empty project directory. */
  dir: string;
  /** The test guest's BIOS disk (`TestGuest.biosDisk`). */
  biosDisk: string;
  /** Token+GET pairs against each side. */
  pairs: number;
  /** Connections the guest opens at once, and how long it holds them. */
  flood: number;
  holdSeconds: number;
  /** Size of the user-data the hog asks for and never reads. */
  hogBytes: number;
  /** The whole run, boot included. */
  timeoutMs: number;
  log?: (message: string) => void;
}

export interface MetadataLoadResult {
  /** Milliseconds per pair as the guest timed them, and how many failed. */
  meta: number[];
  ref: number[];
  failed: { meta: number; ref: number };
  flood: {
    /** What the guest saw established at once (the rest were closed at once). */
    opened: number;
    /** Peak PSS of every connector QEMU started for the flood, plus the server's growth during it. */
    peakExtraPssBytes: number;
    /** Most connector processes alive at one sample. */
    peakConnectors: number;
    /** The pair after the flood: its time, and whether it was answered. */
    afterMs: number;
    afterOk: boolean;
  };
  hog: {
    /** From the hog's connector starting to its exit. */
    connectorMs: number;
    /** What the server logged for the request: its duration and outcome. */
    serverLine: string;
    serverMs: number;
  };
  /** The server's own PSS when the flood began. */
  serverBaselinePssBytes: number;
}

const VM = "md";
const SAMPLE_MS = 40;

export async function runMetadataLoad(options: MetadataLoadOptions): Promise<MetadataLoadResult> {
  const log = options.log ?? (() => {});
  const reference = await startReferenceServer();
  try {
    const words = [
      "castra.mdtimeout=5",
      `castra.mdbench=${options.pairs}`,
      `castra.mdref=${reference.port}`,
      `castra.mdflood=${options.flood}`,
      `castra.mdhold=${options.holdSeconds}`,
      "castra.mdhog=1",
    ].join(" ");
    await biosDiskWithAppend(options.biosDisk, words, join(options.dir, `${VM}.qcow2`));
    await writeFile(join(options.dir, "user-data.bin"), Buffer.alloc(options.hogBytes, "u"));
    await writeFile(
      join(options.dir, "castra.toml"),
      `[project]\nname = "mdload-${process.pid}"\n\n[[vms]]\nname = "${VM}"\nbase_image = "${VM}.qcow2"\n` +
        `memory = "256 MiB"\nready_pattern = "login:"\nmetadata = "ec2"\nuser_data = "user-data.bin"\nssh = false\n`,
    );
    const up = await options.castra(["up", "--no-wait"]);
    if (up.code !== 0) throw new Error(`castra up failed (${up.code}):\n${up.stderr}`);
    try {
      log("guest booting: pairs, then the flood, then the hog");
      return await measure(options);
    } finally {
      await options.castra(["down", "--timeout", "5"]);
    }
  } finally {
    await reference.close();
  }
}

async function measure(options: MetadataLoadOptions): Promise<MetadataLoadResult> {
  const state = join(options.dir, ".castra");
  const server = JSON.parse(await readFile(join(state, "run", `${VM}-metadata.pid`), "utf8")) as {
    pid: number;
    socket: string;
  };
  const serial = join(state, "logs", `${VM}-serial.log`);
  let serverBaseline = 0;

  const connectors = new Map<number, { started: number; ended?: number; phase: string }>();
  let phase = "bench";
  let peakExtra = 0;
  let peakConnectors = 0;
  let text = "";
  let lastSerialRead = 0;
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (Date.now() > deadline)
      throw new Error(`the guest did not finish its load tools in time:\n${text.slice(-2000)}`);
    const now = performance.now();
    const children = await connectorPids(server.socket);
    for (const pid of children) if (!connectors.has(pid)) connectors.set(pid, { started: now, phase });
    for (const [pid, c] of connectors) if (c.ended === undefined && !children.includes(pid)) c.ended = now;
    if (phase === "flood") {
      const sizes = await Promise.all(children.map(pss));
      const growth = Math.max(0, ((await pss(server.pid)) ?? serverBaseline) - serverBaseline);
      peakExtra = Math.max(peakExtra, sizes.reduce<number>((sum, s) => sum + (s ?? 0), 0) + growth);
      peakConnectors = Math.max(peakConnectors, children.length);
    }
    if (now - lastSerialRead > 250) {
      lastSerialRead = now;
      text = await readFile(serial, "utf8").catch(() => "");
      if (phase === "bench" && text.includes("castra-test-guest: mdbench done")) {
        phase = "flood";
        serverBaseline = (await pss(server.pid)) ?? 0;
      }
      if (phase === "flood" && /mdflood after ms=/.test(text)) phase = "hog";
      // Done once the guest is ready and nothing started for the hog is left.
      const hogDone = [...connectors.values()].every((c) => c.phase !== "hog" || c.ended !== undefined);
      if (phase === "hog" && text.includes("castra-test-guest: ready") && hogDone && children.length === 0)
        break;
    }
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  }

  const hogLifetimes = [...connectors.values()]
    .filter((c) => c.phase === "hog")
    .map((c) => (c.ended ?? performance.now()) - c.started);
  // The server logs the hog's request once its connection is gone.
  const userDataLine = async () =>
    (await readFile(join(state, "logs", `${VM}-metadata.log`), "utf8"))
      .split("\n")
      .find((l) => l.includes(" GET /latest/user-data "));
  let serverLine = await userDataLine();
  for (let i = 0; !serverLine && i < 100; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    serverLine = await userDataLine();
  }
  const after = /castra-test-guest: mdflood after ms=(\d+) status=(\w+)/.exec(text);
  const bench = [
    ...text.matchAll(/castra-test-guest: mdbench target=(meta|ref) i=\d+ ms=(\d+) status=(\w+)/g),
  ];
  const pairs = (target: string) => bench.filter((m) => m[1] === target);
  const ok = (target: string) =>
    pairs(target)
      .filter((m) => m[3] === "ok")
      .map((m) => Number(m[2]));
  return {
    meta: ok("meta"),
    ref: ok("ref"),
    failed: {
      meta: pairs("meta").length - ok("meta").length,
      ref: pairs("ref").length - ok("ref").length,
    },
    flood: {
      opened: Number(/castra-test-guest: mdflood opened=(\d+)/.exec(text)?.[1] ?? -1),
      peakExtraPssBytes: peakExtra,
      peakConnectors,
      afterMs: Number(after?.[1] ?? Number.NaN),
      afterOk: after?.[2] === "ok",
    },
    hog: {
      connectorMs: Math.max(0, ...hogLifetimes),
      serverLine: serverLine ?? "",
      serverMs: Number(/ (\d+)ms/.exec(serverLine ?? "")?.[1] ?? Number.NaN),
    },
    serverBaselinePssBytes: serverBaseline,
  };
}

/** Proportional set size of a live process in bytes (its share of pages it shares with others). */
export async function pss(pid: number): Promise<number | undefined> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => undefined);
  const kb = rollup && /^Pss:\s+(\d+) kB/m.exec(rollup)?.[1];
  return kb ? Number(kb) * 1024 : undefined;
}

/**
 * The connectors QEMU runs for this VM's socket. GLib spawns them through a double fork, so they are not
 * QEMU's children: they are found by their command line.
 */
async function connectorPids(socket: string): Promise<number[]> {
  const marker = Buffer.from(`\0--\0${socket}\0`);
  const pids = (await readdir("/proc")).filter((name) => /^\d+$/.test(name));
  const lines = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/cmdline`).catch(() => undefined)));
  return pids.filter((_, i) => lines[i]?.includes(marker)).map(Number);
}

/** The reference: a plain HTTP server on 127.0.0.1 that answers the same pair (any token will do). */
async function startReferenceServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const [status, body] =
      req.method === "PUT" && req.url === "/latest/api/token"
        ? [200, "reference-token"]
        : req.url === "/latest/meta-data/instance-id"
          ? [200, "i-reference"]
          : [404, "not found\n"];
    res.writeHead(status, { "Content-Type": "text/plain", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}
