import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { promisify } from "node:util";
import { CastraError, ExitCode } from "../errors.js";
import { referencedFiles, refuseReferences } from "./disk-references.js";

const run = promisify(execFile);
const dir = await mkdtemp(join(tmpdir(), "castra-disk-refs-"));
after(() => rm(dir, { recursive: true, force: true }));

const hostFile = join(dir, "host-file.raw");
await writeFile(hostFile, Buffer.alloc(1 << 20));
const qemuImg = (...args: string[]) => run("qemu-img", args);

test("a self-contained qcow2 refers to nothing", async () => {
  const plain = join(dir, "plain.qcow2");
  await qemuImg("create", "-q", "-f", "qcow2", plain, "1M");
  assert.deepEqual(await referencedFiles("qemu-img", plain), []);
  await refuseReferences("qemu-img", plain, "The root disk of tiny@v1");
});

test("a backing file, a data-file and a VMDK flat extent are each named and refused with 65", async () => {
  const backed = join(dir, "backed.qcow2");
  await qemuImg("create", "-q", "-f", "qcow2", "-F", "raw", "-b", hostFile, backed);
  const data = join(dir, "data.qcow2");
  await qemuImg("create", "-q", "-f", "qcow2", "-o", `data_file=${join(dir, "data.raw")}`, data, "1M");
  const flat = join(dir, "flat.vmdk");
  await writeFile(
    flat,
    [
      "# Disk DescriptorFile",
      "version=1",
      "CID=fffffffe",
      "parentCID=ffffffff",
      'createType="monolithicFlat"',
      `RW 2048 FLAT "${hostFile}" 0`,
      "",
    ].join("\n"),
  );
  for (const [image, format, named] of [
    [backed, undefined, hostFile],
    [data, undefined, join(dir, "data.raw")],
    [flat, "vmdk", hostFile],
  ] as const) {
    assert.ok((await referencedFiles("qemu-img", image, format)).includes(named), image);
    const err = await refuseReferences("qemu-img", image, "The root disk of tiny@v1", format).catch((e) => e);
    assert.ok(err instanceof CastraError, image);
    assert.equal(err.exitCode, ExitCode.dataErr);
    assert.equal(err.headline, `The root disk of tiny@v1 refers to another file: ${named}`);
  }
});

test("a backing file that does not exist is still named", async () => {
  const dangling = join(dir, "dangling.qcow2");
  await qemuImg(
    "create",
    "-q",
    "-u",
    "-f",
    "qcow2",
    "-F",
    "raw",
    "-b",
    join(dir, "gone.raw"),
    dangling,
    "1M",
  );
  assert.deepEqual(await referencedFiles("qemu-img", dangling), [join(dir, "gone.raw")]);
});
