import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../errors.js";
import { COMMANDS } from "./commands/specs.js";
import { helpText } from "./help.js";
import { childrenOf, type ParsedLine, parseCommandLine } from "./parse.js";

/** What `argv` asks to run, without loading any command. */
async function parse(argv: string[]): Promise<Omit<Extract<ParsedLine, { kind: "run" }>, "kind">> {
  const line = parseCommandLine(argv);
  assert.equal(line.kind, "run");
  const { kind: _, ...run } = line as Extract<ParsedLine, { kind: "run" }>;
  return run;
}

async function usageError(argv: string[]): Promise<string> {
  const err = await parse(argv).then(
    () => assert.fail(`${argv.join(" ")} parsed`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof UsageError);
  return `${err.headline}\nhint: ${err.hint}`;
}

test("up's flags become its typed options; --no-wait is wait: false", async () => {
  assert.deepEqual(
    await parse(["up", "--no-wait", "--timeout", "5", "--accel", "tcg", "--force", "--offline"]),
    {
      id: "up",
      options: { wait: false, timeout: 5, accel: "tcg", force: true, offline: true },
      global: { skipDiscovery: false, noColor: false },
    },
  );
  assert.deepEqual((await parse(["up"]))?.options, { wait: true });
});

test("global flags reach every command", async () => {
  const got = await parse(["-c", "other/castra.toml", "--skip-discovery", "--no-color", "status", "--json"]);
  assert.deepEqual(got, {
    id: "status",
    options: { json: true },
    global: { config: "other/castra.toml", skipDiscovery: true, noColor: true },
  });
});

test("operands join the options: ssh's VM, its command, and whether all came after --", async () => {
  assert.deepEqual((await parse(["ssh", "devbox", "--", "uname", "-a"]))?.options, {
    vm: "devbox",
    command: ["uname", "-a"],
    commandOnly: false,
  });
  assert.deepEqual((await parse(["ssh", "--", "ls", "-l"]))?.options, {
    vm: "ls",
    command: ["-l"],
    commandOnly: true,
  });
});

test("ssh: every word after the VM is the remote command, flags and -- included; -o repeats before it", async () => {
  assert.deepEqual((await parse(["ssh", "alpine", "uname", "-a"]))?.options, {
    vm: "alpine",
    command: ["uname", "-a"],
    commandOnly: false,
  });
  assert.deepEqual((await parse(["ssh", "web", "ls", "--", "-l", "--help"]))?.options.command, [
    "ls",
    "--",
    "-l",
    "--help",
  ]);
  const forwarded = await parse(["ssh", "-o", "LocalForward 8080 localhost:80", "--ssh-option=A=b", "web"]);
  assert.deepEqual(forwarded.options, {
    vm: "web",
    sshOption: ["LocalForward 8080 localhost:80", "A=b"],
    commandOnly: false,
  });
  assert.deepEqual((await parse(["ssh-config", "web"])).options, { vm: "web" });
  assert.match(await usageError(["ssh-config", "web", "db"]), /too many arguments for 'ssh-config'/);
});

test("doctor and completion: their flags and operands; __complete takes the completed line verbatim", async () => {
  assert.deepEqual((await parse(["doctor", "--json"])).options, { json: true });
  assert.deepEqual((await parse(["completion", "zsh"])).options, { shell: "zsh" });
  assert.match(await usageError(["completion", "tcsh"]), /argument 'shell' must be bash, zsh or fish/);
  assert.deepEqual((await parse(["__complete", "bash", "--", "--", "ssh", "-o", ""])).options, {
    shell: "bash",
    words: ["--", "ssh", "-o", ""],
  });
});

test("nested commands: images alone, images pull ID --offline, prune's counts and short flags", async () => {
  assert.equal((await parse(["images"]))?.id, "images");
  assert.deepEqual(await parse(["images", "pull", "alpine-minimal@v1", "--offline"]), {
    id: "imagesPull",
    options: { image: "alpine-minimal@v1", offline: true },
    global: { skipDiscovery: false, noColor: false },
  });
  assert.deepEqual((await parse(["images", "prune", "--cache", "--older-than", "3", "-y"]))?.options, {
    cache: true,
    olderThan: 3,
    yes: true,
  });
  assert.deepEqual((await parse(["logs", "-n", "20", "-f"]))?.options, { tail: 20, follow: true });
});

test("VM names are operands of up, down, status, logs, suspend and destroy", async () => {
  assert.deepEqual((await parse(["up", "web", "db", "--no-wait"])).options, {
    vms: ["web", "db"],
    wait: false,
  });
  assert.deepEqual((await parse(["destroy", "web", "--yes"])).options, { vms: ["web"], yes: true });
  assert.deepEqual((await parse(["snapshot", "save", "--vm", "web", "before"])).options, {
    vm: "web",
    name: "before",
  });
  assert.match(await usageError(["snapshot", "save"]), /missing required argument 'snapshot'/);
});

test("bad values and unknown names are usage errors naming what is wrong", async () => {
  assert.match(await usageError(["up", "--timeout", "soon"]), /expected a positive number of seconds/);
  assert.match(await usageError(["up", "--accel", "hvf"]), /expected auto, kvm or tcg/);
  assert.match(await usageError(["status", "--force"]), /unknown option '--force'/);
  assert.match(
    await usageError(["images", "pul"]),
    /unknown command 'pul'\nhint: did you mean `castra images pull`/,
  );
  assert.match(
    await usageError(["ports", "--verbsoe"]),
    /unknown option '--verbsoe'\nhint: did you mean `--verbose`/,
  );
  assert.match(await usageError(["ports", "extra"]), /too many arguments for .ports./);
  assert.match(await usageError(["broker"]), /required option '--project-dir <dir>' not specified/);
  assert.match(await usageError(["down", "--timeout"]), /option '--timeout <seconds>' argument missing/);
});

test("every spec is a reachable command with its own help", async () => {
  const reachable = (path: string): string[] =>
    childrenOf(path).flatMap((c) => [c.name, ...reachable(c.name)]);
  assert.deepEqual(
    reachable("").sort(),
    Object.values(COMMANDS)
      .map((spec) => spec.name)
      .sort(),
  );
  for (const spec of Object.values(COMMANDS)) assert.ok(helpText(spec.name.split(" ")), spec.name);
});

test("help, version, and the forms of flags: --x=v, -xv, combined shorts, global flags after the command", async () => {
  assert.deepEqual(parseCommandLine(["up", "--help"]), { kind: "help", path: ["up"] });
  assert.deepEqual(parseCommandLine(["help", "logs"]), { kind: "help", path: ["logs"] });
  assert.deepEqual(parseCommandLine(["--version"]), { kind: "version" });
  assert.deepEqual((await parse(["down", "--timeout=2"])).options, { timeout: 2 });
  assert.deepEqual((await parse(["logs", "-n5", "-f"])).options, { tail: 5, follow: true });
  assert.deepEqual((await parse(["images", "prune", "-y", "--cache"])).options, { yes: true, cache: true });
  assert.deepEqual((await parse(["status", "--no-color", "-c", "x.toml"])).global, {
    config: "x.toml",
    skipDiscovery: false,
    noColor: true,
  });
});

test("help for a command lists its flags; the program's lists every visible command", () => {
  const up = helpText(["up"]) ?? "";
  assert.match(up, /^Usage: castra up \[options\] \[vms\.\.\.\]$/m);
  assert.match(up, /^ {2}--no-wait +return once QEMU runs/m);
  assert.match(up, /^ {2}-h, --help +show help$/m);
  const top = helpText([]) ?? "";
  for (const name of ["init", "ports", "up", "down", "status", "logs", "ssh", "images"])
    assert.match(top, new RegExp(`^ {2}${name}\\b`, "m"));
  assert.doesNotMatch(top, /^ {2}(__metadata-server|broker)\b/m);
  assert.match(helpText(["images"]) ?? "", /^ {2}pull \[options\] \[image\] +download and prepare/m);
});
