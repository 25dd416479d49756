import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ensureDir } from "./files.js";

const dir = await mkdtemp(join(tmpdir(), "castra-files-"));
after(() => rm(dir, { recursive: true, force: true }));

test("creates every missing level with the mode, and accepts an existing directory", async () => {
  const deep = join(dir, "a", "b", "c");
  await ensureDir(deep, 0o700);
  await ensureDir(deep, 0o700);
  assert.equal((await stat(deep)).mode & 0o777, 0o700);
});

test("on a read-only mount the error is EROFS, not ENOENT", (t) => {
  if (spawnSync("unshare", ["-m", "true"]).status !== 0) return t.skip("needs unshare -m (root)");
  const module = fileURLToPath(new URL("./files.ts", import.meta.url));
  // In a private mount namespace: `dir` bind-mounted read-only over itself, then ensureDir below it.
  const script = `import(${JSON.stringify(module)}).then((m) => m.ensureDir(process.argv[1] + "/x/y")).then(() => console.log("made"), (e) => console.log(e.code))`;
  const result = spawnSync(
    "unshare",
    [
      "-m",
      "sh",
      "-c",
      'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" --import tsx -e "$3" "$1"',
      "sh",
      dir,
      process.execPath,
      script,
    ],
    { encoding: "utf8" },
  );
  assert.equal(result.stdout.trim(), "EROFS", result.stderr);
});
