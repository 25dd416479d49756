import assert from "node:assert/strict";
import { test } from "node:test";
import { CommanderError } from "commander";
import { COMMANDS } from "./commands/specs.js";
import { buildProgram, type Invocation, quietUsageErrors } from "./program.js";

/** Parses `argv` as the CLI would and returns what would run, without loading any command. */
async function parse(argv: string[]): Promise<Invocation | undefined> {
  let chosen: Invocation | undefined;
  const program = buildProgram(async (invocation) => {
    chosen = invocation;
  });
  quietUsageErrors(program);
  await program.parseAsync(argv, { from: "user" });
  return chosen;
}

async function usageError(argv: string[]): Promise<string> {
  const err = await parse(argv).then(
    () => assert.fail(`${argv.join(" ")} parsed`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CommanderError);
  return err.message;
}

test("up's flags become its typed options; --no-wait is wait: false", async () => {
  assert.deepEqual(
    await parse(["up", "--no-wait", "--timeout", "5", "--accel", "tcg", "--force", "--offline"]),
    {
      id: "up",
      options: { wait: false, timeout: 5, accel: "tcg", force: true, offline: true },
      global: { config: undefined, skipDiscovery: false, noColor: false },
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

test("nested commands: images alone, images pull ID --offline, prune's counts and short flags", async () => {
  assert.equal((await parse(["images"]))?.id, "images");
  assert.deepEqual(await parse(["images", "pull", "alpine-minimal@v1", "--offline"]), {
    id: "imagesPull",
    options: { image: "alpine-minimal@v1", offline: true },
    global: { config: undefined, skipDiscovery: false, noColor: false },
  });
  assert.deepEqual((await parse(["images", "prune", "--cache", "--older-than", "3", "-y"]))?.options, {
    cache: true,
    olderThan: 3,
    yes: true,
  });
  assert.deepEqual((await parse(["logs", "-n", "20", "-f"]))?.options, { tail: 20, follow: true });
});

test("bad values and unknown names are usage errors with commander's reason", async () => {
  assert.match(await usageError(["up", "--timeout", "soon"]), /expected a positive number of seconds/);
  assert.match(await usageError(["up", "--accel", "hvf"]), /expected auto, kvm or tcg/);
  assert.match(await usageError(["down", "--force"]), /unknown option '--force'/);
  assert.match(await usageError(["images", "pul"]), /unknown command 'pul'/);
  assert.match(
    await usageError(["broker", "--port", "70000", "--project-dir", "."]),
    /expected a port 1-65535/,
  );
});

test("every spec is a reachable command", async () => {
  const program = buildProgram(async () => {});
  const names = (cmd: typeof program, prefix = ""): string[] =>
    cmd.commands.flatMap((sub) => [`${prefix}${sub.name()}`, ...names(sub, `${prefix}${sub.name()} `)]);
  assert.deepEqual(
    names(program).sort(),
    Object.values(COMMANDS)
      .map((spec) => spec.name)
      .sort(),
  );
});
