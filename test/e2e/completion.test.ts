import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import { promisify } from "node:util";
import { CASTRA_BIN } from "../support/cli.js";
import { byoToml, tempProject } from "../support/in-process.js";

// The scripts of `castra completion` loaded into real shells, with the built CLI on PATH as `castra`.
// Run `npm run build` first.
const run = promisify(execFile);
const project = await tempProject(byoToml(["web", "db"]));
after(project.remove);
await mkdir(join(project.dir, "bin"));
await symlink(CASTRA_BIN, join(project.dir, "bin", "castra"));
const env = { ...process.env, PATH: `${join(project.dir, "bin")}:${process.env.PATH}` };

const has = (shell: string) => !spawnSync(shell, ["-c", "true"]).error;

/** Runs `script` in `shell` in the project directory; its stdout. */
async function inShell(shell: string, args: string[], script: string): Promise<string> {
  const { stdout } = await run(shell, [...args, script], { cwd: project.dir, env });
  return stdout;
}

const support = (file: string) => join(import.meta.dirname, "..", "support", "completion", file);

test("bash: sourced, it completes `castra st` to status, VM names after ssh, flag values, files", async () => {
  const script = [
    `source '${support("bash-line.sh")}'`,
    "source <(castra completion bash)",
    'complete_line "castra st"; complete_line "castra ssh "; complete_line "castra up --accel t"',
    'complete_line "castra --config cas"; complete -p castra',
  ].join("\n");
  const lines = (await inShell("bash", ["--norc", "--noprofile", "-c"], script)).split("\n");
  assert.deepEqual(lines.slice(0, 5), [
    "status",
    "web db",
    "tcg",
    "castra.toml",
    "complete -F _castra castra",
  ]);
});

test("fish: loaded, `complete -C` offers status with its description and the VM names", async (t) => {
  if (!has("fish")) return t.skip("fish is not installed");
  const script = ["castra completion fish | source", 'complete -C "castra st"', 'complete -C "castra ssh "'];
  const out = await inShell("fish", ["--no-config", "-c"], script.join("; "));
  assert.deepEqual(out.trim().split("\n").sort(), [
    "db",
    "status\tshow each VM's state, resources, uptime, broker and forwards",
    "web",
  ]);
});

test("zsh: the function hands _describe the candidates and _files the paths", async (t) => {
  if (!has("zsh")) return t.skip("zsh is not installed");
  const script = [
    `source '${support("zsh-stubs.zsh")}'`,
    "source <(castra completion zsh)",
    'words=(castra ssh ""); CURRENT=3; _castra',
    'words=(castra -c ""); CURRENT=3; _castra',
  ];
  const out = await inShell("zsh", ["-f", "-c"], script.join("\n"));
  assert.deepEqual(out.trim().split("\n"), ["web", "db", "FILES"]);
});
