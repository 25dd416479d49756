import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CastraError, ExitCode } from "../errors.js";
import { ensurePrivateDir, narrowModes, openPrivate, refuseLinksIn } from "./private-files.js";

const dir = await mkdtemp(join(tmpdir(), "castra-private-"));
after(() => rm(dir, { recursive: true, force: true }));

/** The error `fn` rejects with, which must be exit 73 naming `path`. */
async function refusal(fn: () => Promise<unknown>, path: string): Promise<void> {
  const err = await fn().then(
    () => assert.fail("expected a refusal"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, ExitCode.cantCreate);
  assert.equal(err.headline, `Refusing to follow the symbolic link ${path}`);
}

test("every way of opening refuses a link (73, naming it) and leaves its target as it was", async () => {
  const target = join(dir, "target");
  await writeFile(target, "precious\n");
  for (const how of ["append", "truncate", "create", "read", "readWrite"] as const) {
    const link = join(dir, `link-${how}`);
    await symlink(target, link);
    if (how === "create") {
      // O_EXCL: any existing name, a link included, fails as existing.
      await assert.rejects(openPrivate(link, how, "create it"));
    } else await refusal(() => openPrivate(link, how, "open it"), link);
  }
  assert.equal(await readFile(target, "utf8"), "precious\n");
});

test("a new file is 0600 whatever the umask", async () => {
  const handle = await openPrivate(join(dir, "new.log"), "append", "open the log");
  await handle.close();
  assert.equal((await stat(join(dir, "new.log"))).mode & 0o777, 0o600);
});

test("private directories are 0700 and a link on the way is refused", async () => {
  const root = join(dir, "project", ".castra");
  await ensurePrivateDir(root, join(root, "images", "a", "v1"));
  for (const sub of ["", "images", "images/a", "images/a/v1"])
    assert.equal((await stat(join(root, sub))).mode & 0o777, 0o700, sub);
  const elsewhere = join(dir, "elsewhere");
  await mkdir(elsewhere);
  await symlink(elsewhere, join(root, "logs"));
  await refusal(() => ensurePrivateDir(root, join(root, "logs")), join(root, "logs"));
  await refusal(() => refuseLinksIn(root), join(root, "logs"));
});

test("wider modes are narrowed to owner-only and reported; read-only images and links are left alone", async () => {
  const root = join(dir, "wide");
  await mkdir(join(root, "logs"), { recursive: true });
  await writeFile(join(root, "logs", "qemu.log"), "");
  await writeFile(join(root, "image.qcow2"), "");
  await writeFile(join(root, "tidy"), "");
  await chmod(root, 0o755);
  await chmod(join(root, "logs"), 0o775);
  await chmod(join(root, "logs", "qemu.log"), 0o644);
  await chmod(join(root, "image.qcow2"), 0o444);
  await chmod(join(root, "tidy"), 0o600);
  const outside = join(dir, "outside");
  await writeFile(outside, "");
  await chmod(outside, 0o644);
  await symlink(outside, join(root, "link"));
  assert.deepEqual(await narrowModes(root), [
    { path: "", from: 0o755, to: 0o700 },
    { path: "logs", from: 0o775, to: 0o700 },
    { path: "logs/qemu.log", from: 0o644, to: 0o600 },
  ]);
  assert.equal((await stat(join(root, "image.qcow2"))).mode & 0o777, 0o444);
  assert.equal((await stat(outside)).mode & 0o777, 0o644, "a link's target is never changed");
  assert.deepEqual(await narrowModes(root), [], "a second run finds nothing to do");
});
