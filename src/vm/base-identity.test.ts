import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CastraError, ExitCode } from "../errors.js";
import { baseIdentityPath, checkBaseIdentity, recordBaseIdentity } from "./base-identity.js";

const dir = await mkdtemp(join(tmpdir(), "castra-base-identity-"));
after(() => rm(dir, { recursive: true, force: true }));

test("the same base passes; a touched base with the same bytes passes and is recorded again", async () => {
  const base = join(dir, "a.qcow2");
  const overlay = join(dir, "a-overlay.qcow2");
  await writeFile(base, "base bytes");
  await recordBaseIdentity(overlay, base);
  await checkBaseIdentity(overlay, base, "devbox");
  await utimes(base, new Date(), new Date(Date.now() + 60_000));
  await checkBaseIdentity(overlay, base, "devbox");
  const record = JSON.parse(await readFile(baseIdentityPath(overlay), "utf8"));
  assert.equal(record.mtimeMs, (await stat(base)).mtimeMs);
});

test("other bytes at the base's path are refused with 65, naming both checksums and a way out", async () => {
  const base = join(dir, "b.qcow2");
  const overlay = join(dir, "b-overlay.qcow2");
  await writeFile(base, "the original disk");
  await recordBaseIdentity(overlay, base);
  await writeFile(base, "a different disk");
  const err = await checkBaseIdentity(overlay, base, "devbox").catch((e: unknown) => e);
  assert.ok(err instanceof CastraError);
  assert.equal(err.exitCode, ExitCode.dataErr);
  assert.match(err.headline, /base image of vm devbox changed/);
  assert.match(err.detail ?? "", /sha256 [0-9a-f]{64}.*\n.*sha256 [0-9a-f]{64}/);
  assert.match(err.hint ?? "", /put the original base image back .*mv /);
});

test("an overlay without a record (older castra) gets one from the current base", async () => {
  const base = join(dir, "c.qcow2");
  const overlay = join(dir, "c-overlay.qcow2");
  await writeFile(base, "whatever is there");
  await checkBaseIdentity(overlay, base, "devbox");
  const record = JSON.parse(await readFile(baseIdentityPath(overlay), "utf8"));
  assert.equal(record.path, base);
  assert.match(record.sha256, /^[0-9a-f]{64}$/);
});
