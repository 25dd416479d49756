import assert from "node:assert/strict";
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { projectAt } from "../../test/support/project.js";
import type { MountConfig, Project, VmConfig } from "../config/model.js";
import { DataError, InputMissingError } from "../errors.js";
import { procMountsPath, shareSpecs } from "./guest-mounts.js";

let root: string;
let project: Project;

before(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), "castra-shares-")));
  project = projectAt(join(root, "proj"));
  await mkdir(join(root, "proj", ".castra", "ssh"), { recursive: true });
  await mkdir(join(root, "proj", "src"));
  await writeFile(join(root, "proj", "file"), "");
  await symlink(join(root, "proj", ".castra"), join(root, "proj", "state-link"));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

function vm(...mounts: Partial<MountConfig>[]): VmConfig {
  return {
    name: "web",
    source: { kind: "path", path: "/b.qcow2" },
    overlay: join(project.stateDir, "web-overlay.qcow2"),
    portForwards: [],
    mounts: mounts.map((m, i) => ({ host: project.rootDir, guest: `/m${i}`, writable: false, ...m })),
  };
}

test("a share that holds .castra/ names it for the guest to cover; one beside it does not", async () => {
  const specs = await shareSpecs(
    project,
    vm({}, { host: dirname(project.rootDir) }, { host: join(root, "proj", "src") }),
  );
  assert.deepEqual(
    specs.map((s) => [s.tag, s.hide]),
    [
      ["castra0", ".castra"],
      ["castra1", "proj/.castra"],
      ["castra2", undefined],
    ],
  );
});

test(".castra/ itself, anything inside it, or a link to it is never shared (exit 65)", async () => {
  for (const host of [project.stateDir, join(project.stateDir, "ssh"), join(root, "proj", "state-link")]) {
    await assert.rejects(shareSpecs(project, vm({ host })), (err: unknown) => {
      assert.ok(err instanceof DataError, String(err));
      assert.match(err.headline, /is castra's own state directory or inside it$/);
      return true;
    });
  }
});

test("a missing host directory, or a file, is exit 66 naming the mount point", async () => {
  for (const [host, what] of [
    [join(root, "proj", "gone"), "does not exist"],
    [join(root, "proj", "file"), "is not a directory"],
  ] as const) {
    await assert.rejects(shareSpecs(project, vm({ host, guest: "/srv/x" })), (err: unknown) => {
      assert.ok(err instanceof InputMissingError, String(err));
      assert.equal(err.headline, `mount of vm web: ${host.slice(project.rootDir.length + 1)} ${what}`);
      assert.match(err.detail ?? "", /at \/srv\/x\.$/);
      return true;
    });
  }
});

test("paths are written as /proc/mounts writes them", () => {
  assert.equal(procMountsPath("/my project/a\\b"), "/my\\040project/a\\134b");
  assert.equal(procMountsPath("/plain/path,1"), "/plain/path,1");
});
