import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { promisify } from "node:util";
import { DataError, ExitCode, InputMissingError, ToolMissingError } from "../errors.js";
import { collectAuthorizedKeys } from "./authorized-keys.js";
import { ensureProjectKey } from "./keys.js";

const run = promisify(execFile);
const dir = await mkdtemp(join(tmpdir(), "castra-ssh-keys-"));
after(() => rm(dir, { recursive: true, force: true }));

async function keyPair(name: string, type = "ed25519"): Promise<{ privatePath: string; publicLine: string }> {
  const privatePath = join(dir, name);
  await run("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", `${name}@test`, "-f", privatePath]);
  return { privatePath, publicLine: (await readFile(`${privatePath}.pub`, "utf8")).trim() };
}

test("the project key is created once, owner-only, and a second call returns the same key", async () => {
  const stateDir = join(dir, "project", ".castra");
  const first = await ensureProjectKey(stateDir, "demo");
  assert.equal(first.privateKeyPath, join(stateDir, "ssh", "id_ed25519"));
  assert.match(first.publicKey, /^ssh-ed25519 [A-Za-z0-9+/]+=* castra@demo$/);
  assert.equal((await stat(first.privateKeyPath)).mode & 0o777, 0o600);
  assert.equal((await stat(join(stateDir, "ssh"))).mode & 0o777, 0o700);
  assert.equal((await readFile(first.publicKeyPath, "utf8")).trim(), first.publicKey);
  // ssh-keygen itself accepts the pair: the public key derived from the private one is the same.
  const { stdout } = await run("ssh-keygen", ["-y", "-f", first.privateKeyPath]);
  assert.equal(
    stdout.trim().split(" ").slice(0, 2).join(" "),
    first.publicKey.split(" ").slice(0, 2).join(" "),
  );

  const second = await ensureProjectKey(stateDir, "demo");
  assert.deepEqual(second, first);
});

test("a private key that lost its mode or its .pub is repaired, not replaced", async () => {
  const stateDir = join(dir, "repair", ".castra");
  const original = await ensureProjectKey(stateDir, "repair");
  await chmod(original.privateKeyPath, 0o644);
  await unlink(original.publicKeyPath);
  const repaired = await ensureProjectKey(stateDir, "repair");
  assert.equal((await stat(repaired.privateKeyPath)).mode & 0o777, 0o600);
  assert.equal(repaired.publicKey.split(" ")[1], original.publicKey.split(" ")[1]);
});

test("without ssh-keygen on PATH the error says how to install it (exit 72)", async () => {
  const path = process.env.PATH;
  process.env.PATH = join(dir, "empty-bin");
  try {
    const err = await ensureProjectKey(join(dir, "no-tool", ".castra"), "x").catch((e: unknown) => e);
    assert.ok(err instanceof ToolMissingError);
    assert.equal(err.exitCode, ExitCode.toolMissing);
    assert.match(err.hint ?? "", /apt-get install openssh-client/);
    assert.match(err.hint ?? "", /dnf install openssh-clients/);
  } finally {
    process.env.PATH = path;
  }
});

test("served keys: project key first, then key lines and .pub files, without duplicates", async () => {
  const project = await ensureProjectKey(join(dir, "collect", ".castra"), "collect");
  const laptop = await keyPair("laptop");
  const rsa = await keyPair("ci", "rsa");
  await mkdir(join(dir, "keys"), { recursive: true });
  await writeFile(
    join(dir, "keys", "team.pub"),
    `# team keys\n${rsa.publicLine}\r\n\n${laptop.publicLine}\n`,
  );
  const keys = await collectAuthorizedKeys(
    project.publicKey,
    [laptop.publicLine, "keys/team.pub", `${dir}/laptop.pub`, `  ${project.publicKey}  `],
    dir,
  );
  assert.deepEqual(keys, [project.publicKey, laptop.publicLine, rsa.publicLine]);
});

test("a private key is refused whether pasted or given as a path (exit 65), and never echoed", async () => {
  const project = await ensureProjectKey(join(dir, "refuse", ".castra"), "refuse");
  const secret = await keyPair("secret");
  const secretText = await readFile(secret.privatePath, "utf8");
  await writeFile(join(dir, "disguised.pub"), secretText);
  for (const entry of [secretText, secret.privatePath, "disguised.pub"]) {
    const err = await collectAuthorizedKeys(project.publicKey, [entry], dir, "vms[0].authorized_keys").catch(
      (e: unknown) => e,
    );
    assert.ok(err instanceof DataError, `accepted ${entry.slice(0, 30)}`);
    assert.equal(err.exitCode, ExitCode.dataErr);
    assert.match(err.headline, /vms\[0\]\.authorized_keys\[0\] is a private key/);
    const body = secretText.split("\n")[1] ?? "";
    assert.ok(
      !`${err.headline}${err.detail}${err.hint}`.includes(body),
      "the error shows private key material",
    );
  }
});

test("malformed keys and missing files are named with their entry", async () => {
  const project = await ensureProjectKey(join(dir, "bad", ".castra"), "bad");
  const cases: [string, RegExp, number][] = [
    ["ssh-ed25519 not-base64!", /authorized_keys\[0\] is not a valid OpenSSH public key/, ExitCode.dataErr],
    // A valid blob declared as another type: a pasted-together line.
    [`ssh-rsa ${project.publicKey.split(" ")[1]}`, /not a valid OpenSSH public key/, ExitCode.dataErr],
    ["keys/missing.pub", /missing\.pub does not exist/, ExitCode.noInput],
  ];
  for (const [entry, message, code] of cases) {
    const err = await collectAuthorizedKeys(project.publicKey, [entry], dir).catch((e: unknown) => e);
    assert.ok(err instanceof DataError || err instanceof InputMissingError, entry);
    assert.match(err.headline, message);
    assert.equal(err.exitCode, code);
  }
  await writeFile(join(dir, "notes.pub"), "hello\n");
  const err = await collectAuthorizedKeys(project.publicKey, ["notes.pub"], dir).catch((e: unknown) => e);
  assert.ok(err instanceof DataError);
  assert.match(err.headline, /notes\.pub line 1 is not an OpenSSH public key/);
});
