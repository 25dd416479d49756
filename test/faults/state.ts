import { chmod, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { byoProject, guestCatalog, IMAGE, serveGuestImage, writeJson } from "./fixtures.js";
import {
  type CaseContext,
  castraBin,
  errorLine,
  exitOf,
  hasStackTrace,
  type RunResult,
  type Scenario,
} from "./harness.js";

/** Exit 73 whose message names a path inside the project's `.castra/`, and no stack trace. */
function refusedWithPath(result: RunResult, stateDir: string): boolean {
  return result.code === 73 && result.stderr.includes(stateDir) && !hasStackTrace(result.stderr);
}

/** `.castra/` is a read-only bind mount (a private mount namespace): EROFS. */
const readOnly: Scenario = {
  name: "read-only .castra",
  timeoutMs: 60_000,
  async run(ctx) {
    const dir = await ctx.dir("project");
    await byoProject(dir, { name: `faults-ro-${process.pid}` });
    const stateDir = join(dir, ".castra");
    await mkdir(stateDir);
    const server = await ctx.server();
    await serveGuestImage(server);
    const catalog = await writeJson(join(ctx.root, "catalog.json"), await guestCatalog(server.origin));
    const inReadOnly = (args: string[]) =>
      ctx.exec(
        "unshare",
        [
          "-m",
          "sh",
          "-c",
          'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 99; shift; exec "$@"',
          "sh",
          stateDir,
          process.execPath,
          castraBin(),
          ...args,
        ],
        { cwd: dir, env: { CASTRA_CATALOG: catalog }, timeoutMs: 60_000 },
      );
    const up = await inReadOnly(["up"]);
    const pull = await inReadOnly(["images", "pull", IMAGE]);
    ctx.check(
      "`.castra/` on a read-only mount: `up`, `images pull`",
      "exit 73 naming the path, no download started",
      `up ${exitOf(up)}: ${errorLine(up)}; pull ${exitOf(pull)}, ${server.requests.length} requests`,
      refusedWithPath(up, stateDir) && refusedWithPath(pull, stateDir) && server.requests.length === 0,
    );
  },
};

/** castra run as `nobody` in a project directory owned by root: EACCES. */
const otherUser: Scenario = {
  name: "unwritable project dir",
  timeoutMs: 60_000,
  async run(ctx: CaseContext) {
    // mkdtemp made the root 0700: nobody must be able to enter it and read castra.toml, not write.
    await chmod(ctx.root, 0o755);
    const dir = await ctx.dir("project");
    await chmod(dir, 0o755);
    await byoProject(dir, { name: `faults-nobody-${process.pid}` });
    const asNobody = (args: string[]) =>
      ctx.exec(
        "setpriv",
        ["--reuid=nobody", "--regid=nogroup", "--clear-groups", process.execPath, castraBin(), ...args],
        { cwd: dir, env: { HOME: "/nonexistent" }, timeoutMs: 60_000 },
      );
    const up = await asNobody(["up"]);
    const init = await asNobody(["init", "--force"]);
    ctx.check(
      "project directory not writable (castra run as nobody)",
      "`up` exit 73 naming .castra/; `init` exit 73",
      `up ${exitOf(up)}: ${errorLine(up)}; init ${exitOf(init)}`,
      refusedWithPath(up, join(dir, ".castra")) && init.code === 73 && !hasStackTrace(init.stderr),
    );
  },
};

export const stateScenarios: Scenario[] = [readOnly, otherUser];
