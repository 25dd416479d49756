import { spawn } from "node:child_process";
import { constants } from "node:os";
import { StringDecoder } from "node:string_decoder";
import type { Project, VmConfig } from "../../config/model.js";
import { LaunchError, UsageError } from "../../errors.js";
import { findOnPath } from "../../host/tools.js";
import { buildSshArgs, sshToolMissingError } from "../../ssh/client.js";
import { classifySshFailure, sshFailureError } from "../../ssh/failure.js";
import { refuseSshLinks } from "../../ssh/keys.js";
import { hostKeyMismatchError } from "../../ssh/known-hosts.js";
import { sshOptionForm } from "../../ssh/options.js";
import { waitForSsh } from "../../vm/ssh-ready.js";
import type { VmRunRecord } from "../../vm/state.js";
import type { CommandContext } from "../context.js";
import type { IO } from "../io.js";
import { resolveProject } from "../project.js";
import { runningSshTarget } from "../ssh-target.js";
import { oneVm } from "../targets.js";
import type { SshOptions } from "./specs.js";

/** ssh's stderr is kept this long, to recognise a changed host key after it exits. */
const STDERR_TAIL_CHARS = 16 * 1024;

/**
 * `castra ssh [-o OPTION]… [VM [COMMAND…]]` (or `castra ssh -- COMMAND…` with one VM): the system's ssh into
 * a running VM with the project key, its login user and the project's known_hosts. Exits with ssh's exit
 * code, unless ssh itself failed in a way castra can explain (69).
 */
export async function runSsh(opts: SshOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const project = await resolveProject(ctx);
  const named = opts.commandOnly ? undefined : opts.vm;
  const command =
    opts.commandOnly && opts.vm !== undefined ? [opts.vm, ...(opts.command ?? [])] : (opts.command ?? []);
  refuseSshFlagAsCommand(command);
  const vm = oneVm(project, named, "ssh", "operand");
  const { target, status } = await runningSshTarget(project, vm);
  // ssh appends to known_hosts: a link planted in .castra/ssh/ is refused (73), never followed.
  await refuseSshLinks(project.stateDir);
  const ssh = await findOnPath("ssh", io.env.PATH);
  if (!ssh) throw sshToolMissingError("ssh", "`castra ssh` runs the system's OpenSSH client");
  const booting = status.state === "starting";
  if (booting && status.record?.ssh?.keyServed) await waitWhileBooting(project, vm, status.record, ctx);
  else if (booting) io.info(`${vm.name} is still booting: its SSH server may not answer yet`);
  const { code, stderr } = await runClient(
    ssh,
    buildSshArgs({ ...target, command }, opts.sshOption, io.env),
    io,
  );
  // 255 is ssh's own failure (a remote command's own 255 prints none of what is recognised here).
  if (code !== 255) return code;
  const where = { alias: target.hostKeyAlias, knownHostsPath: target.knownHostsPath, vmName: vm.name };
  const mismatch = hostKeyMismatchError(stderr, where);
  if (mismatch) throw mismatch;
  const failure = classifySshFailure(stderr);
  if (!failure) return code;
  const address = `${target.host ?? "127.0.0.1"}:${target.port}`;
  throw sshFailureError(failure, { vmName: vm.name, user: target.user, address, booting });
}

/** A login during boot waits a little for the SSH server, as `up` would have, instead of failing at once. */
const BOOT_WAIT_MS = 60_000;

async function waitWhileBooting(project: Project, vm: VmConfig, record: VmRunRecord, ctx: CommandContext) {
  ctx.io.info(`${vm.name} is still booting: waiting up to ${BOOT_WAIT_MS / 1000} s for its SSH server…`);
  try {
    await waitForSsh(project, vm, record, { timeoutMs: BOOT_WAIT_MS, signal: ctx.signal });
  } catch (err) {
    // A changed host key or Ctrl-C is the answer; a server still silent is what ssh itself will say next.
    if (!(err instanceof LaunchError)) throw err;
  }
}

/** `castra ssh -- -L 8080:localhost:80` meant an ssh option: say where ssh's options go. */
function refuseSshFlagAsCommand(command: string[]): void {
  const [first] = command;
  if (!first?.startsWith("-")) return;
  const option = sshOptionForm(command);
  throw new UsageError(`'${first}' is an ssh option, not a command to run in the guest`, {
    detail: "Every word after the VM's name (or after -- for a project with one VM) is the remote command.",
    hint: option
      ? `give ssh's options with -o before the VM: castra ssh -o '${option}' [VM]`
      : "give ssh's options as ssh_config options with -o before the VM (castra ssh -o 'ForwardAgent yes' [VM]), or use plain ssh with `castra ssh-config`",
  });
}

/** Runs ssh on this terminal; its stderr passes through and its end is kept for error messages. */
function runClient(ssh: string, args: string[], io: IO): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(ssh, args, { stdio: ["inherit", "inherit", "pipe"] });
    const decoder = new StringDecoder("utf8");
    let tail = "";
    const pass = (text: string) => {
      io.err.write(text);
      tail = (tail + text).slice(-STDERR_TAIL_CHARS);
    };
    child.stderr?.on("data", (chunk: Buffer) => pass(decoder.write(chunk)));
    child.once("error", (err) =>
      reject(
        new LaunchError(`Cannot run ${ssh}`, {
          detail: err.message,
          hint: "check the OpenSSH client (ssh -V), then run `castra ssh` again",
          cause: err,
        }),
      ),
    );
    child.once("close", (code, signal) => {
      pass(decoder.end());
      // Like a shell: a client killed by a signal exits 128 + its number.
      const exit = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
      resolve({ code: exit, stderr: tail });
    });
  });
}
