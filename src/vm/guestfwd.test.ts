import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { promisify } from "node:util";
import { LaunchError } from "../errors.js";
import { METADATA_BOUNDS } from "../metadata/bounds.js";
import { CONNECTOR_SCRIPT } from "./connector.js";
import { metadataGuestfwd, QEMU_GUESTFWD_MAX_BYTES } from "./guestfwd.js";

const run = promisify(execFile);
const dir = await mkdtemp(join(tmpdir(), "castra-guestfwd-"));
after(() => rm(dir, { recursive: true, force: true }));

// Every character that means something to a shell or to QEMU's option parser.
const hostile = 'it\'s a $(touch PWNED) `touch PWNED` "q" ; & | > < * ? , ,, \\ x';
// The socket path as long as a unix socket path can be; the rule must still fit what QEMU keeps.
const binDir = join(dir, "p ';$(x),");
const fakePerl = join(binDir, "perl");
const socketPath = join(dir, `r${hostile}`, "vm-metadata.sock");
const connector = { perlPath: fakePerl, socketPath, ...METADATA_BOUNDS };
const expectedArgv = ["-e", CONNECTOR_SCRIPT, "--", socketPath, "3", "10"];

/** What QEMU hands to libslirp: the text after `cmd:`, with `,,` read back as `,`. */
function commandQemuRuns(guestfwd: string): string {
  const prefix = "tcp:169.254.169.254:80-cmd:";
  assert.ok(guestfwd.startsWith(prefix), guestfwd);
  // QEMU's option parser: `,,` is a literal comma, a single comma would end the option.
  assert.doesNotMatch(guestfwd.replaceAll(",,", ""), /,/);
  return guestfwd.slice(prefix.length).replaceAll(",,", ",");
}

async function setup(): Promise<string> {
  await mkdir(binDir, { recursive: true });
  // A fake perl that prints the argv it received, one per line, as JSON.
  await writeFile(
    fakePerl,
    `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done | ${process.execPath} -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.stringify(s.split("\\n").slice(0,-1))))'\n`,
  );
  await chmod(fakePerl, 0o755);
  return commandQemuRuns(metadataGuestfwd(connector));
}

test("a command run through /bin/sh -c gets exactly the intended argv and runs nothing else", async () => {
  const command = await setup();
  const cwd = await mkdtemp(join(dir, "cwd-"));
  const { stdout } = await run("/bin/sh", ["-c", command], { cwd });
  assert.deepEqual(JSON.parse(stdout), expectedArgv);
  assert.deepEqual(await readdir(cwd), [], "a command substitution ran");
  assert.ok(!existsSync(join(binDir, "PWNED")));
});

test("libslirp's GLib argv parser reads the same argv", async (t) => {
  // libslirp 4.x splits the command with g_shell_parse_argv and spawns it without a shell.
  const python = "/usr/bin/python3";
  const probe = "from gi.repository import GLib";
  if (
    !existsSync(python) ||
    (await run(python, ["-c", probe]).then(
      () => false,
      () => true,
    ))
  ) {
    return t.skip("python3-gi (GLib bindings) not installed");
  }
  const command = await setup();
  const parse =
    "import sys, json; from gi.repository import GLib; print(json.dumps(GLib.shell_parse_argv(sys.argv[1])[1]))";
  const { stdout } = await run(python, ["-c", parse, command]);
  assert.deepEqual(JSON.parse(stdout), [fakePerl, ...expectedArgv]);
});

test("QEMU accepts the rule, commas and quotes included", async (t) => {
  const qemu = ["/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64"].find(existsSync);
  if (!qemu) return t.skip("qemu-system-x86_64 not installed");
  const guestfwd = metadataGuestfwd(connector);
  const netdev = `user,id=net0,net=169.254.0.0/16,guestfwd=${guestfwd}`;
  const args = ["-accel", "tcg", "-nodefaults", "-display", "none", "-S", "-netdev", netdev, "-qmp", "stdio"];
  const child = spawn(qemu, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  // QEMU greets on QMP only once every option, the netdev included, has been parsed and set up.
  child.stdout.once("data", () => child.stdin.end('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n'));
  const code = await new Promise((resolve) => child.on("close", resolve));
  assert.equal(code, 0, stderr);
});

test("the rule fits the bytes QEMU keeps with the longest socket path castra uses; a longer one is refused", () => {
  const longest = { ...connector, perlPath: "/usr/local/bin/perl", socketPath: `/${"s".repeat(106)}` };
  const rule = metadataGuestfwd(longest).replaceAll(",,", ",");
  assert.ok(Buffer.byteLength(rule) <= QEMU_GUESTFWD_MAX_BYTES, `${Buffer.byteLength(rule)} bytes`);
  const err = (() => {
    try {
      metadataGuestfwd({ ...longest, perlPath: `/${"p".repeat(300)}/perl` });
    } catch (e) {
      return e;
    }
  })();
  assert.ok(err instanceof LaunchError);
  assert.match(err.detail ?? "", /QEMU keeps 1023 bytes of a guestfwd rule/);
});
