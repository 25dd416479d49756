import { spawn } from "node:child_process";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort, pidsRunning } from "../support/processes.js";
import { byoProject, fingerprint, guestCatalog, IMAGE, serveGuestImage, writeJson } from "./fixtures.js";
import {
  type CaseContext,
  errorLine,
  exitOf,
  type RunResult,
  type Scenario,
  until,
  writableByOthers,
} from "./harness.js";
import { isAlive, listenersOf, qemuPidsOf } from "./proc.js";

const BOOT_MS = 120_000;

/** `castra up` and friends in `dir`, with a boot-sized time limit. */
function castraIn(ctx: CaseContext, dir: string, env: NodeJS.ProcessEnv = {}) {
  return (args: string[]) => ctx.castra(args, { cwd: dir, env, timeoutMs: BOOT_MS });
}

async function statusJson(castra: (args: string[]) => Promise<RunResult>) {
  const result = await castra(["status", "--json"]);
  try {
    const doc = JSON.parse(result.stdout) as { vms: Record<string, unknown>[] };
    return { result, vm: doc.vms[0] ?? {} };
  } catch {
    return { result, vm: {} as Record<string, unknown> };
  }
}

async function serialText(dir: string, vm = "devbox"): Promise<string> {
  return readFile(join(dir, ".castra", "logs", `${vm}-serial.log`), "utf8").catch(() => "");
}

/**
 * One booted project shared by several checks: two `up` at once, the sockets it listens on, the modes of
 * what it created, `kill -9` of QEMU and the restart on the same overlay, and a pid file naming a reused pid.
 */
const guest: Scenario = {
  name: "guest lifecycle",
  timeoutMs: 300_000,
  async run(ctx) {
    const dir = await ctx.dir("guest");
    const name = `faults-guest-${process.pid}`;
    const [forward, named, broker] = [await freePort(), await freePort(), await freePort()];
    await byoProject(dir, {
      name,
      vmExtra: [
        `[[vms.port_forwards]]\nhost = ${forward}\nguest = 22`,
        `[[vms.port_forwards]]\nhost = ${named}\nguest = 23\nhost_address = "127.0.0.2"`,
      ].join("\n\n"),
      tail: `[broker]\nport = ${broker}`,
    });
    const server = await ctx.server();
    await serveGuestImage(server);
    const catalog = await writeJson(join(ctx.root, "catalog.json"), await guestCatalog(server.origin));
    const castra = castraIn(ctx, dir, { CASTRA_CATALOG: catalog });

    // A managed image in the same project, so the permission check covers the image cache and its log too.
    const pull = await castra(["images", "pull", IMAGE]);
    const [a, b] = await Promise.all([castra(["up"]), castra(["up"])]);
    const qemus = await qemuPidsOf(name);
    ctx.check(
      "two `castra up` at once in one project",
      "both exit 0, exactly one QEMU",
      `${exitOf(a)} and ${exitOf(b)}, ${qemus.length} QEMU`,
      a.code === 0 && b.code === 0 && qemus.length === 1,
    );

    const brokerPids = await pidsRunning(`broker\0--project-dir\0${dir}\0`);
    const qemuSockets = (await Promise.all(qemus.map(listenersOf))).flat();
    const brokerSockets = (await Promise.all(brokerPids.map(listenersOf))).flat();
    const expected = [`127.0.0.1:${forward}`, `127.0.0.2:${named}`];
    const onlyLoopbackQemu =
      expected.every((s) => qemuSockets.includes(s)) &&
      qemuSockets.every((s) => s === `127.0.0.2:${named}` || s.startsWith("127.0.0.1:"));
    ctx.check(
      "hostfwd and broker sockets (kernel socket table)",
      `QEMU on 127.0.0.1 only, except 127.0.0.2:${named} named in castra.toml; broker on no TCP port (a unix socket)`,
      `QEMU [${qemuSockets.join(" ")}], broker ${brokerPids.length} process, TCP [${brokerSockets.join(" ")}]`,
      onlyLoopbackQemu && brokerPids.length === 1 && brokerSockets.length === 0,
    );

    const loose = [
      ...(await writableByOthers(join(dir, ".castra"))),
      ...(await writableByOthers(join(ctx.root, "user-cache"))).map((p) => `user-cache/${p}`),
    ];
    ctx.check(
      ".castra/ (logs, run files, overlay, images) and the user download cache, under umask 002",
      "nothing group- or other-writable",
      pull.code === 0
        ? loose.length === 0
          ? "none"
          : `writable by others: ${loose.join(", ")}`
        : `pull ${errorLine(pull)}`,
      pull.code === 0 && loose.length === 0,
    );

    // kill -9 of QEMU: status must say error with QEMU's last log lines.
    const record = await readFile(join(dir, ".castra", "run", "devbox.pid"), "utf8");
    for (const pid of qemus) process.kill(pid, "SIGKILL");
    await until(async () => !(await Promise.all(qemus.map(isAlive))).some(Boolean), 10_000);
    const text = await castra(["status"]);
    const { vm } = await statusJson(castra);
    // Only this run's lines count: a QEMU killed while healthy usually wrote none, and status says so.
    const lines = Array.isArray(vm.last_log_lines) ? vm.last_log_lines.length : -1;
    const explained =
      lines > 0 ? /its last lines/.test(text.stderr) : /wrote nothing before it ended/.test(text.stderr);
    const namesLog = text.stderr.includes(join(".castra", "logs", "devbox.log"));
    ctx.check(
      "kill -9 of QEMU, then `castra status`",
      "exit 1, state error; this run's last QEMU log lines shown, or that QEMU wrote none, naming its log",
      `${exitOf(text)}, state ${vm.state}, ${lines} log lines in JSON, text ${explained && namesLog ? "explains them and names the log" : `DOES NOT: ${text.stderr.trim()}`}`,
      text.code === 1 && vm.state === "error" && lines >= 0 && explained && namesLog,
    );

    const overlay = join(dir, ".castra", "devbox-overlay.qcow2");
    const inode = (await stat(overlay)).ino;
    const again = await castra(["up"]);
    const serial = await serialText(dir);
    const sameOverlay = (await stat(overlay)).ino === inode && !/Created overlay/.test(again.stderr);
    ctx.check(
      "`castra up` after kill -9",
      "starts again on the same overlay; the guest's data survived (boot counter 2)",
      `${exitOf(again)}, overlay ${sameOverlay ? "same" : "RECREATED"}, serial: ${serial.match(/boots=\d+/g)?.join(" ") ?? "no boots= line"}`,
      again.code === 0 && sameOverlay && /boots=2/.test(serial) && (await qemuPidsOf(name)).length === 1,
    );
    const down = await castra(["down", "--timeout", "30"]);

    // The pid file of a VM whose pid now belongs to an unrelated process.
    const sleeper = spawn("sleep", ["600"], { stdio: "ignore" });
    ctx.track(sleeper.pid);
    await new Promise((resolve) => sleeper.once("spawn", resolve));
    const stale = { ...JSON.parse(record), pid: sleeper.pid };
    await writeFile(join(dir, ".castra", "run", "devbox.pid"), JSON.stringify(stale));
    const reused = await statusJson(castra);
    const down2 = await castra(["down", "--timeout", "5"]);
    const alive = await isAlive(sleeper.pid as number);
    ctx.check(
      "pid file whose pid is reused by an unrelated process",
      "`status` says stopped; `down` exits 0 and never signals that process",
      `first down ${exitOf(down)}; status ${reused.vm.state}, down ${exitOf(down2)}, process ${alive ? "untouched" : "KILLED"}`,
      down.code === 0 && reused.vm.state === "stopped" && down2.code === 0 && alive,
    );
  },
};

/** A project path so long that `.castra/run/<vm>.qmp` cannot be a unix socket path (108 bytes). */
const longPath: Scenario = {
  name: "long project path",
  timeoutMs: 150_000,
  async run(ctx) {
    const dir = await ctx.dir(join("l".repeat(60), "o".repeat(60), "n".repeat(20)));
    const name = `faults-long-${process.pid}`;
    await byoProject(dir, { name });
    const castra = castraIn(ctx, dir);
    const wanted = join(dir, ".castra", "run", "devbox.qmp");
    const up = await castra(["up"]);
    const { vm } = await statusJson(castra);
    const record = JSON.parse(
      await readFile(join(dir, ".castra", "run", "devbox.pid"), "utf8").catch(() => "{}"),
    );
    const socket = String(record.qmpSocket ?? "");
    ctx.onCleanup(async () => {
      if (socket) await rm(socket, { force: true });
    });
    const down = await castra(["down", "--timeout", "30"]);
    const socketGone =
      socket !== "" &&
      !(await stat(socket).then(
        () => true,
        () => false,
      ));
    const left = await qemuPidsOf(name);
    ctx.check(
      `project path of ${Buffer.byteLength(wanted)} bytes to its QMP socket (limit 107)`,
      "`up` exit 0, `status` running, `down` exit 0, socket removed",
      `up ${exitOf(up)}, status ${vm.state}, socket ${socket.length} bytes, down ${exitOf(down)}, ${left.length} QEMU left, socket ${socketGone ? "removed" : "LEFT"}`,
      up.code === 0 &&
        vm.state === "running" &&
        down.code === 0 &&
        left.length === 0 &&
        socketGone &&
        Buffer.byteLength(socket) <= 107,
    );
  },
};

/** Two unrelated projects brought up at the same moment: one VM each, each cache intact. */
const twoProjects: Scenario = {
  name: "two projects at once",
  timeoutMs: 240_000,
  async run(ctx) {
    const server = await ctx.server();
    const served = await serveGuestImage(server);
    const catalog = await writeJson(join(ctx.root, "catalog.json"), await guestCatalog(server.origin));
    const env = { CASTRA_CATALOG: catalog };
    const names = [`faults-two-a-${process.pid}`, `faults-two-b-${process.pid}`];
    const dirs = await Promise.all(names.map((n) => ctx.dir(n)));
    // Empty directories: each `up` downloads (or waits for the other's download of) the managed image.
    const results = await Promise.all(dirs.map((dir) => castraIn(ctx, dir, env)(["up"])));
    const counts = await Promise.all(names.map((n) => qemuPidsOf(n)));
    const verify = await Promise.all(dirs.map((dir) => castraIn(ctx, dir, env)(["images", "verify"])));
    // Both projects share the user's download cache: the disk is fetched once, and the cache re-hashes clean.
    const cache = await castraIn(ctx, dirs[0] as string, env)(["images", "verify", "--cache"]);
    const fetches = server.gets(served.vhd).length;
    const states = await Promise.all(
      dirs.map(async (dir) => (await statusJson(castraIn(ctx, dir, env))).vm.state),
    );
    const downs = await Promise.all(dirs.map((dir) => castraIn(ctx, dir, env)(["down", "--timeout", "30"])));
    const allOk = results.every((r) => r.code === 0);
    ctx.check(
      "two projects at once (`castra up` in each empty directory, same moment)",
      "one VM per project, both running; `images verify` exit 0 in each and for the shared download cache; disk fetched once",
      `${results.map(exitOf).join(", ")}; QEMUs ${counts.map((c) => c.length).join("+")}, states ${states.join("/")}, ` +
        `verify ${verify.map(exitOf).join("/")}, cache verify ${exitOf(cache)}, disk GETs ${fetches}, down ${downs.map(exitOf).join("/")}`,
      allOk &&
        counts.every((c) => c.length === 1) &&
        states.every((s) => s === "running") &&
        verify.every((v) => v.code === 0) &&
        cache.code === 0 &&
        fetches === 1,
    );
  },
};

/** The base image under an existing overlay moves or is replaced: castra must refuse, and touch nothing. */
const backingFile: Scenario = {
  name: "backing file",
  timeoutMs: 200_000,
  async run(ctx) {
    const dir = await ctx.dir("backing");
    const name = `faults-backing-${process.pid}`;
    await byoProject(dir, { name });
    const castra = castraIn(ctx, dir);
    const overlay = join(dir, ".castra", "devbox-overlay.qcow2");
    const first = await castra(["up"]);
    await castra(["down", "--timeout", "30"]);
    const before = await fingerprint(overlay).catch(() => "missing");
    const toml = await readFile(join(dir, "castra.toml"), "utf8");
    const base = join(dir, "base.qcow2");
    const moved = join(dir, "moved", "base.qcow2");
    await mkdir(join(dir, "moved"));
    await rename(base, moved);

    const attempt = async (label: string, expectedCode: number, pattern: RegExp) => {
      const result = await castra(["up", "--timeout", "30"]);
      const after = await fingerprint(overlay).catch(() => "missing");
      const qemus = await qemuPidsOf(name);
      ctx.check(
        `overlay's backing file ${label}`,
        `exit ${expectedCode}, a clear error; overlay untouched (sha256, mtime, inode)`,
        `${exitOf(result)}, overlay ${after === before ? "untouched" : "CHANGED"}, ${qemus.length} QEMU: ${errorLine(result)}`,
        first.code === 0 &&
          result.code === expectedCode &&
          pattern.test(result.stderr) &&
          after === before &&
          qemus.length === 0,
      );
      if (qemus.length > 0) await castra(["down", "--timeout", "5"]);
    };
    await attempt("moved (castra.toml not updated)", 66, /base\.qcow2 does not exist/);
    await writeFile(
      join(dir, "castra.toml"),
      toml.replace('base_image = "base.qcow2"', 'base_image = "moved/base.qcow2"'),
    );
    await attempt("moved (castra.toml points at the new place)", 65, /belongs to another base image/);
    await writeFile(join(dir, "castra.toml"), toml);
    // Another image at the same path: a different disk that happens to have the old name.
    await ctx.exec("qemu-img", ["create", "-q", "-f", "qcow2", base, "64M"], { cwd: dir });
    await attempt("replaced by another image at the same path", 65, /base image .*changed/i);

    await rename(moved, base);
    const restored = await castra(["up"]);
    const serial = await serialText(dir);
    await castra(["down", "--timeout", "30"]);
    ctx.check(
      "original base image put back",
      "`up` exit 0 on the same overlay, the guest's data intact (boot counter 2)",
      `${exitOf(restored)}, serial: ${serial.match(/boots=\d+/g)?.join(" ") ?? "no boots= line"}`,
      restored.code === 0 && /boots=2/.test(serial),
    );
  },
};

export const vmScenarios: Scenario[] = [guest, longPath, twoProjects, backingFile];
