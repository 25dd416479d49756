import { type ChildProcess, spawn } from "node:child_process";
import { chmod, lstat, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { byoProject, guestCatalog, IMAGE_DIR, serveGuestImage, writeJson } from "./fixtures.js";
import { type CaseContext, errorLine, exitOf, listTree, type RunResult, type Scenario } from "./harness.js";
import { isAlive, qemuPidsOf } from "./proc.js";

/** A `sleep` the scenario owns (killed at its end): an unrelated process whose pid a planted file names. */
async function unrelatedProcess(ctx: CaseContext, seconds: string): Promise<ChildProcess> {
  const child = spawn("sleep", [seconds], { stdio: "ignore" });
  ctx.track(child.pid);
  await new Promise((resolve) => child.once("spawn", resolve));
  return child;
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn("true", { stdio: "ignore" });
  await new Promise((resolve) => child.once("exit", resolve));
  return child.pid as number;
}

/**
 * A project that arrives (a clone, a tarball) with planted run records: one names an unrelated live
 * process and points its QMP socket at a file of the user's, one a dead pid with its QEMU log pointing at
 * a secret, and the broker's names another unrelated process. Nothing outside .castra/ may be read,
 * signalled or deleted because of them.
 */
const forgedRecords: Scenario = {
  name: "forged pid files",
  timeoutMs: 120_000,
  async run(ctx) {
    const dir = await ctx.dir("project");
    await byoProject(dir, {
      name: `faults-forged-${process.pid}`,
      tail: `[[vms]]\nname = "db"\nbase_image = "base.qcow2"\n\n[broker]\nport = 7999`,
    });
    const run = join(dir, ".castra", "run");
    await mkdir(run, { recursive: true });
    const secret = join(ctx.root, "shadow");
    await writeFile(secret, "root:SECRET-HASH-from-a-host-file:19000:0:99999:7:::\n");
    const victim = join(ctx.root, "precious.txt");
    await writeFile(victim, "the user's file\n");
    const vmSleep = await unrelatedProcess(ctx, "600");
    const brokerSleep = await unrelatedProcess(ctx, "601");
    const record = (pid: number, argv: string[]) => ({
      pid,
      argv,
      startedAt: new Date().toISOString(),
      accel: "tcg",
      baseImage: join(dir, "base.qcow2"),
      overlay: join(dir, ".castra", "devbox-overlay.qcow2"),
      cpus: 1,
      memoryBytes: 268435456,
      qmpSocket: victim,
      serialLog: secret,
      qemuLog: secret,
    });
    await writeJson(join(run, "devbox.pid"), record(vmSleep.pid as number, ["sleep", "600"]));
    await writeJson(join(run, "db.pid"), record(await deadPid(), ["qemu-system-x86_64"]));
    await writeJson(join(run, "broker.pid"), {
      pid: brokerSleep.pid,
      argv: ["sleep", "601"],
      port: 7999,
      startedAt: new Date().toISOString(),
    });
    const castra = (args: string[]) => ctx.castra(args, { cwd: dir, timeoutMs: 60_000 });
    const outputs: RunResult[] = [await castra(["status"]), await castra(["status", "--json"])];
    const down = await castra(["down", "--timeout", "2"]);
    outputs.push(down, await castra(["logs", "--tail", "20"]));
    const leaked = outputs.some((r) => `${r.stdout}${r.stderr}`.includes("SECRET-HASH"));
    const vmAlive = await isAlive(vmSleep.pid as number);
    const brokerAlive = await isAlive(brokerSleep.pid as number);
    const kept = await readFile(victim, "utf8").catch(() => "");
    ctx.check(
      "planted run/<vm>.pid and run/broker.pid naming unrelated processes and host files",
      "status/logs print nothing of the files they name; `down` exit 0 signals and deletes nothing of theirs",
      `secret ${leaked ? "PRINTED" : "not printed"}; down ${exitOf(down)}; vm-named process ${vmAlive ? "alive" : "KILLED"}, broker-named process ${brokerAlive ? "alive" : "KILLED"}, named file ${kept ? "kept" : "DELETED"}`,
      !leaked && down.code === 0 && vmAlive && brokerAlive && kept !== "",
    );
  },
};

/** One planted link: where (relative to the project), what the command is, and whether its target exists. */
interface PlantedLink {
  at: string;
  command: string[];
  /** A dangling link: the command must not create its target. */
  dangling?: boolean;
  managed?: boolean;
}

const LINKS: PlantedLink[] = [
  { at: ".castra/logs/devbox-serial.log", command: ["up", "--no-wait"] },
  { at: ".castra/logs/devbox.log", command: ["up", "--no-wait"] },
  { at: ".castra/devbox-overlay.qcow2", command: ["up", "--no-wait"], dangling: true },
  { at: ".castra/ssh/id_ed25519", command: ["up", "--no-wait"] },
  { at: `${IMAGE_DIR}/rootfs.qcow2.partial`, command: ["images", "pull"], managed: true },
  { at: ".castra/logs/image-manager.log", command: ["images", "pull"], managed: true },
];

/** What a link's target looks like: content and mode (or absent). */
async function targetState(path: string): Promise<string> {
  const info = await stat(path).catch(() => undefined);
  if (!info) return "absent";
  return `${(info.mode & 0o777).toString(8)} ${await readFile(path, "utf8")}`;
}

/** Each link planted alone in a fresh project: the command must refuse it (73, naming it) and leave its target be. */
const plantedLinks: Scenario = {
  name: "symlinks in .castra",
  timeoutMs: 300_000,
  async run(ctx) {
    const server = await ctx.server();
    await serveGuestImage(server);
    const catalog = await writeJson(join(ctx.root, "catalog.json"), await guestCatalog(server.origin));
    for (const [i, link] of LINKS.entries()) {
      const dir = await ctx.dir(`project-${i}`);
      const name = `faults-link-${i}-${process.pid}`;
      await byoProject(dir, {
        name,
        vmExtra: 'metadata = "ec2"',
        tail: link.managed
          ? `[[vms]]\nname = "managed"\nmanaged_image = { name = "alpine-minimal", version = "v1" }`
          : "",
      });
      const target = join(ctx.root, `target-${i}`);
      if (!link.dangling) {
        await writeFile(target, "PRECIOUS user data\n");
        await chmod(target, 0o640);
      }
      const before = await targetState(target);
      const planted = join(dir, link.at);
      await mkdir(dirname(planted), { recursive: true });
      await symlink(target, planted);
      const env = { CASTRA_CATALOG: catalog };
      const result = await ctx.castra(link.command, { cwd: dir, env, timeoutMs: 120_000 });
      const after = await targetState(target);
      const qemus = await qemuPidsOf(name);
      if (qemus.length > 0)
        await ctx.castra(["down", "--timeout", "2"], { cwd: dir, env, timeoutMs: 60_000 });
      const stillLink = (await lstat(planted).catch(() => undefined))?.isSymbolicLink() ?? false;
      ctx.check(
        `link planted at ${link.at} → ${link.dangling ? "a missing file" : "a user's file"}; castra ${link.command.join(" ")}`,
        "exit 73 naming the link; its target untouched (content, mode, or still absent); no QEMU",
        `${exitOf(result)}, target ${after === before ? "untouched" : `CHANGED (${before.split(" ")[0]} → ${after.slice(0, 30)})`}, ${qemus.length} QEMU: ${errorLine(result)}`,
        result.code === 73 &&
          result.stderr.includes(planted) &&
          after === before &&
          qemus.length === 0 &&
          stillLink,
      );
    }
  },
};

/** Modes of everything under `.castra/` that a user other than the owner could read or enter. */
async function looseEntries(stateDir: string): Promise<string[]> {
  const loose: string[] = [];
  for (const rel of ["", ...(await listTree(stateDir))]) {
    const info = await lstat(join(stateDir, rel)).catch(() => undefined);
    if (!info || info.isSymbolicLink() || (info.mode & 0o077) === 0) continue;
    // A read-only image (0444) may keep its mode: its 0700 directory keeps others out.
    if (info.isFile() && (info.mode & 0o222) === 0 && rel.startsWith("images/")) continue;
    loose.push(`${rel || "."} ${(info.mode & 0o777).toString(8)}`);
  }
  return loose;
}

/** A fresh project under umask 022, then one whose `.castra/` came with wide modes. */
const privateState: Scenario = {
  name: "state permissions",
  timeoutMs: 200_000,
  async run(ctx) {
    const server = await ctx.server();
    await serveGuestImage(server);
    const env = {
      CASTRA_CATALOG: await writeJson(join(ctx.root, "catalog.json"), await guestCatalog(server.origin)),
    };
    const managed = `[[vms]]\nname = "managed"\nmanaged_image = { name = "alpine-minimal", version = "v1" }`;
    const fresh = await ctx.dir("fresh");
    await byoProject(fresh, {
      name: `faults-modes-${process.pid}`,
      vmExtra: 'metadata = "ec2"',
      tail: managed,
    });
    const castra = (dir: string, args: string[]) => ctx.castra(args, { cwd: dir, env, timeoutMs: 150_000 });
    const pull = await castra(fresh, ["images", "pull"]);
    const up = await castra(fresh, ["up", "--no-wait"]);
    const loose = await looseEntries(join(fresh, ".castra"));
    await castra(fresh, ["down", "--timeout", "5"]);
    ctx.check(
      "`images pull` then `up` in a fresh project (umask 022)",
      ".castra/ and everything below: directories 0700, files 0600 (read-only images may stay 0444)",
      `pull ${exitOf(pull)}, up ${exitOf(up)}; ${loose.length === 0 ? "all private" : `readable by others: ${loose.slice(0, 6).join(", ")}${loose.length > 6 ? ` (+${loose.length - 6})` : ""}`}`,
      pull.code === 0 && up.code === 0 && loose.length === 0,
    );

    const old = await ctx.dir("old");
    await byoProject(old, { name: `faults-narrow-${process.pid}` });
    for (const d of [".castra", ".castra/logs", ".castra/run"]) {
      await mkdir(join(old, d), { recursive: true });
      await chmod(join(old, d), 0o755);
    }
    await writeFile(join(old, ".castra", "logs", "devbox.log"), "an older castra's log\n");
    await chmod(join(old, ".castra", "logs", "devbox.log"), 0o644);
    const again = await castra(old, ["up", "--no-wait"]);
    const left = await looseEntries(join(old, ".castra"));
    await castra(old, ["down", "--timeout", "5"]);
    const notice = again.stderr.split("\n").filter((l) => /narrow|permission/i.test(l));
    ctx.check(
      "`up` in a project whose .castra/, logs/, run/ are 0755 and a log 0644",
      "modes narrowed to 0700/0600, with a one-line notice",
      `${exitOf(again)}; ${left.length === 0 ? "all private" : `still open: ${left.join(", ")}`}; notice: ${notice.length === 1 ? notice[0] : `${notice.length} lines`}`,
      again.code === 0 && left.length === 0 && notice.length === 1,
    );
  },
};

export const plantedScenarios: Scenario[] = [forgedRecords, plantedLinks, privateState];
