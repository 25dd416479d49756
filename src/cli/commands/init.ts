import { randomBytes } from "node:crypto";
import { chmod, link, rename, stat, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import { CONFIG_FILE_NAME } from "../../config/discover.js";
import { starterConfig } from "../../config/starter.js";
import { CannotCreateError, fsError, UsageError } from "../../errors.js";
import { ensureDir, exists } from "../../host/files.js";
import { userMode } from "../../host/umask.js";
import type { CommandContext } from "../context.js";
import type { InitOptions } from "./specs.js";

/** `castra init`: writes a commented starter castra.toml and `.castra/` beside it. */
export async function runInit(opts: InitOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const target = await targetFile(resolve(io.cwd, opts.output ?? "."));
  const dir = dirname(target);
  const projectName = checkProjectName(opts.projectName ?? basename(dir));
  const shown = relative(io.cwd, target) || target;

  if (!opts.force && (await exists(target))) throw alreadyExists(shown, opts.output);
  await makeUserDir(dir);
  await writeAtomically(target, starterConfig(projectName), Boolean(opts.force), () =>
    alreadyExists(shown, opts.output),
  );
  const stateDir = join(dir, ".castra");
  await makeDir(stateDir, 0o700);
  // Overlays and images are large and per-machine: keep them out of version control.
  await writeFile(join(stateDir, ".gitignore"), "*\n", { flag: "wx" }).catch(() => {});

  io.success(
    `Wrote ${shown} (project ${JSON.stringify(projectName)}: VM alpine from alpine-minimal@v1; \`castra ssh\` logs in)`,
  );
  io.success(`Created ${relative(io.cwd, stateDir) || stateDir}/ for images, overlays and logs`);
  const cd = dir === resolve(io.cwd) ? "" : `cd ${relative(io.cwd, dir) || dir} && `;
  io.info(`next: ${cd}castra up`);
  return 0;
}

/** `-o` names a directory (existing, or without `.toml`) or the file itself. */
async function targetFile(path: string): Promise<string> {
  const info = await stat(path).catch(() => null);
  if (info?.isDirectory()) return join(path, CONFIG_FILE_NAME);
  if (info || path.endsWith(".toml")) return path;
  return join(path, CONFIG_FILE_NAME);
}

export function checkProjectName(name: string): string {
  if (name.trim() === "" || name.length > 64 || /\p{Cc}/u.test(name)) {
    throw new UsageError(`Invalid project name: ${JSON.stringify(name)}`, {
      detail: "A project name is 1 to 64 characters with no control characters.",
      hint: "castra init --project-name demo",
    });
  }
  return name;
}

/** Writes a temporary file, then links (no --force: fails if the target appeared) or renames it into place. */
async function writeAtomically(
  target: string,
  text: string,
  force: boolean,
  onExists: () => Error,
): Promise<void> {
  const tmp = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    await writeFile(tmp, text, { mode: 0o644, flag: "wx" });
    // castra.toml is the user's file, shared like source: their umask, not castra's private one.
    await chmod(tmp, userMode(0o644));
    if (force) await rename(tmp, target);
    else await link(tmp, target).catch((err) => linkFallback(err, target, text));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") throw onExists();
    throw fsError(err, "write the config file", target);
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Some filesystems (vfat, some network mounts) have no hard links: create the file exclusively instead. */
async function linkFallback(err: NodeJS.ErrnoException, target: string, text: string): Promise<void> {
  if (err.code === "EEXIST" || err.code === "ENOSPC") throw err;
  await writeFile(target, text, { mode: 0o644, flag: "wx" });
  await chmod(target, userMode(0o644));
}

/** The project directory is the user's: a new one gets the mode their umask gives. */
async function makeUserDir(path: string): Promise<void> {
  const existed = await exists(path);
  await makeDir(path, 0o755);
  if (!existed) await chmod(path, userMode(0o755)).catch(() => {});
}

async function makeDir(path: string, mode: number): Promise<void> {
  try {
    await ensureDir(path, mode);
  } catch (err) {
    throw fsError(err, "create the directory", path);
  }
}

function alreadyExists(shown: string, output?: string): CannotCreateError {
  return new CannotCreateError(`${shown} already exists`, {
    detail: "castra init does not overwrite a castra.toml without --force.",
    hint: `castra init --force${output ? ` -o ${output}` : ""} (replaces it with the starter file)`,
  });
}
