import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { imageProject, pullImage } from "./downloads.js";
import { IMAGE_DIR } from "./fixtures.js";
import { errorLine, exitOf, type RunResult, type Scenario } from "./harness.js";

const SECRET = "s3cret-pw";

/** Files castra wrote that could hold a URL: logs, manifests and download-cache records. */
async function writtenFiles(root: string, projects: string[]): Promise<string[]> {
  const blobs = join(root, "user-cache", "downloads", "sha256");
  const records = (await readdir(blobs).catch(() => [])).filter((f) => f.endsWith(".json"));
  return [
    ...projects.flatMap((dir) => [
      join(dir, ".castra", "logs", "image-manager.log"),
      join(dir, IMAGE_DIR, "manifest.json"),
    ]),
    ...records.map((f) => join(blobs, f)),
  ];
}

/** Where the password shows up: "stdout", "stderr" or a file's path. */
async function exposures(results: RunResult[], files: string[]): Promise<string[]> {
  const found = results.flatMap((r) => [
    ...(r.stdout.includes(SECRET) ? ["stdout"] : []),
    ...(r.stderr.includes(SECRET) ? ["stderr"] : []),
  ]);
  for (const file of files)
    if ((await readFile(file, "utf8").catch(() => "")).includes(SECRET)) found.push(file);
  return found;
}

/** Issue 14, item 7: `user:password@` in CASTRA_MIRROR never reaches the terminal, the logs or any file. */
const mirrorCredentials: Scenario = {
  name: "credentials in URLs",
  timeoutMs: 90_000,
  async run(ctx) {
    const p = await imageProject(ctx);
    const mirror = p.server.origin.replace("//", `//mirror-user:${SECRET}@`);
    const good = await pullImage(ctx, p, { CASTRA_MIRROR: mirror });
    const shownRedacted = good.stderr.includes("mirror-user:***@127.0.0.1");
    const leaks = await exposures([good], await writtenFiles(ctx.root, [p.project]));
    ctx.check(
      "CASTRA_MIRROR=http://user:password@…, a pull that succeeds",
      "exit 0; the URL is shown as user:***@; the password is in no output, log, manifest or cache record",
      `${exitOf(good)}, redacted URL ${shownRedacted ? "shown" : "NOT shown"}, password in: ${leaks.join(" ") || "nothing"}`,
      good.code === 0 && shownRedacted && leaks.length === 0,
    );

    const q = await ctx.dir("failing");
    const bad = await ctx.castra(["images", "pull"], {
      cwd: q,
      env: { ...p.env, CASTRA_MIRROR: `${mirror}/missing`, CASTRA_CACHE_DIR: "off" },
      timeoutMs: 60_000,
    });
    const badLeaks = await exposures([bad], await writtenFiles(ctx.root, [q]));
    ctx.check(
      "CASTRA_MIRROR=http://user:password@…, a pull that fails (404)",
      "exit 69 naming the URL as user:***@; the password is in no output or log",
      `${exitOf(bad)}, password in: ${badLeaks.join(" ") || "nothing"}: ${errorLine(bad)}`,
      bad.code === 69 && bad.stderr.includes("mirror-user:***@") && badLeaks.length === 0,
    );
  },
};

export const secretScenarios: Scenario[] = [mirrorCredentials];
