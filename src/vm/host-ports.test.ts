import assert from "node:assert/strict";
import { test } from "node:test";
import { projectAt } from "../../test/support/project.js";
import { castraQemuOf } from "./host-ports.js";
import { vmPaths } from "./paths.js";
import { buildQemuArgs } from "./qemu-args.js";

test("a castra QEMU's argv names its project, VM and directory (commas and all)", () => {
  const project = projectAt("/home/u/my,project", { name: "shop, front" });
  const vm = {
    name: "web",
    source: { kind: "path" as const, path: "/b.qcow2" },
    overlay: "/o.qcow2",
    portForwards: [],
  };
  const args = buildQemuArgs(vm, { path: "/b.qcow2", format: "qcow2" }, vmPaths(project, vm), {
    accel: "tcg",
    projectName: project.name,
    network: { subnet: "169.254.0.0/16", mac: "52:54:00:00:00:01" },
  });
  assert.deepEqual(castraQemuOf(["/usr/bin/qemu-system-x86_64", ...args]), {
    project: "shop, front",
    vm: "web",
    directory: "/home/u/my,project",
  });
  // A QEMU an older castra started gave the serial log by path.
  const older = [
    "-name",
    "guest=castra:shop,, front:web",
    "-chardev",
    "file,id=serial0,path=/home/u/my,,project/.castra/logs/web-serial.log",
  ];
  assert.equal(castraQemuOf(older)?.directory, "/home/u/my,project");
  assert.equal(castraQemuOf(["sleep", "60"]), undefined);
});
