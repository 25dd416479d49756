import assert from "node:assert/strict";
import { test } from "node:test";
import type { VmConfig } from "../config/model.js";
import { pendingChanges } from "./drift.js";
import { shareArgs } from "./qemu-args.js";
import type { VmRunRecord } from "./state.js";

test("mounts castra.toml adds, removes or makes writable wait for a restart, named by their host directory", () => {
  const vm = (mounts: VmConfig["mounts"]): VmConfig => ({
    name: "web",
    source: { kind: "path", path: "/b.qcow2" },
    overlay: "/p/.castra/web-overlay.qcow2",
    portForwards: [],
    mounts,
  });
  const running = vm([
    { host: "/p,1", guest: "/project", writable: false },
    { host: "/data", guest: "/data", writable: false },
  ]);
  const record = { argv: ["qemu-system-x86_64", ...shareArgs(running)] } as VmRunRecord;
  assert.deepEqual(pendingChanges(running, record), []);
  const now = vm([
    { host: "/p,1", guest: "/project", writable: false },
    { host: "/data", guest: "/srv/data", writable: true },
  ]);
  assert.deepEqual(pendingChanges(now, record), [
    "mount /data (writable) added",
    "mount /data (read-only) removed",
  ]);
});
