import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { FakeVmHost } from "../../../test/support/fake-vm-host.js";
import { byoToml, castraInProcess, tempProject } from "../../../test/support/in-process.js";
import { loadProjectFile, synthesizeProject } from "../../config/load.js";
import { rememberProject } from "../../project/registry.js";
import type { ListedVm } from "./list.js";

test("list shows every VM of every project that ran, with state and SSH port; gone projects drop out", async () => {
  const state = await mkdtemp(join(tmpdir(), "castra-state-"));
  const web = await tempProject(byoToml(["web", "db"]));
  const zero = await tempProject();
  const gone = await tempProject(byoToml(["old"]));
  try {
    const env = { XDG_STATE_HOME: state };
    for (const dir of [web.dir, zero.dir, gone.dir]) await mkdir(join(dir, ".castra"), { recursive: true });
    const webProject = await loadProjectFile(join(web.dir, "castra.toml"));
    await rememberProject(webProject, env);
    await rememberProject(synthesizeProject(zero.dir), env);
    await rememberProject(await loadProjectFile(join(gone.dir, "castra.toml")), env);
    await gone.remove();
    const host = new FakeVmHost();
    host.seed(webProject, "web", "running");
    host.seedSuspended(synthesizeProject(zero.dir), "alpine");

    const table = await castraInProcess(["list"], { cwd: tmpdir(), env, vmHost: host });
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^PROJECT\s+DIRECTORY\s+VM\s+STATE\s+SSH$/m);
    assert.match(
      table.stdout,
      new RegExp(`^demo\\s+${web.dir}\\s+web\\s+running\\s+127\\.0\\.0\\.1:40022$`, "m"),
    );
    assert.match(table.stdout, new RegExp(`^demo\\s+${web.dir}\\s+db\\s+stopped\\s+-$`, "m"));
    assert.match(table.stdout, /\salpine\s+suspended\s+-$/m);
    assert.doesNotMatch(table.stdout, /\sold\s/);

    const json = await castraInProcess(["list", "--json"], { cwd: tmpdir(), env, vmHost: host });
    const vms = JSON.parse(json.stdout).vms as ListedVm[];
    assert.deepEqual(vms.find((v) => v.vm === "web")?.ssh, { host: "127.0.0.1", port: 40022 });
  } finally {
    await web.remove();
    await zero.remove();
    await rm(state, { recursive: true, force: true });
  }
});
