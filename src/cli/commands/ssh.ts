import { spawn } from "node:child_process";
import { constants } from "node:os";
import { join } from "node:path";
import { StringDecoder } from "node:string_decoder";
import type { Project, VmConfig } from "../../config/model.js";
import { InputMissingError, LaunchError, UnavailableError, UsageError } from "../../errors.js";
import { exists } from "../../host/files.js";
import { findOnPath } from "../../host/tools.js";
import { buildSshArgs, sshToolMissingError } from "../../ssh/client.js";
import { sshDir } from "../../ssh/keys.js";
import { hostKeyAlias, hostKeyMismatchError, knownHostsPath } from "../../ssh/known-hosts.js";
import type { SshEndpoint } from "../../vm/guest-access.js";
import { vmStatus } from "../../vm/state.js";
import type { CommandContext } from "../context.js";
import type { IO } from "../io.js";
import { resolveProject } from "../project.js";
import type { SshOptions } from "./specs.js";

/** ssh's stderr is kept this long, to recognise a changed host key after it exits. */
const STDERR_TAIL_CHARS = 16 * 1024;

/**
 * `castra ssh [VM] [-- COMMAND…]`: the system's ssh into a running VM with the project key, its login user
 * and the project's known_hosts. Exits with ssh's exit code.
 */
export async function runSsh(opts: SshOptions, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const project = await resolveProject(ctx);
  const named = opts.commandOnly ? undefined : opts.vm;
  const command =
    opts.commandOnly && opts.vm !== undefined ? [opts.vm, ...(opts.command ?? [])] : (opts.command ?? []);
  const vm = chooseVm(project, named);
  const endpoint = await runningEndpoint(project, vm, io);
  const keyPath = join(sshDir(project.stateDir), "id_ed25519");
  if (!(await exists(keyPath))) {
    throw new InputMissingError(`The project's SSH key ${keyPath} is missing`, {
      detail: `vm ${vm.name} was given the key castra created at \`castra up\`; without it nobody can log in.`,
      hint: "run `castra down`, then `castra up`: it creates a new key and hands it to the guest",
    });
  }
  const ssh = await findOnPath("ssh", io.env.PATH);
  if (!ssh) throw sshToolMissingError("ssh", "`castra ssh` runs the system's OpenSSH client");
  const where = {
    alias: hostKeyAlias(project.name, vm.name),
    knownHostsPath: knownHostsPath(project.stateDir),
    vmName: vm.name,
  };
  const args = buildSshArgs({
    keyPath,
    knownHostsPath: where.knownHostsPath,
    hostKeyAlias: where.alias,
    // castra.toml's ssh_user applies at once; otherwise the user `up` settled (e.g. the image profile's).
    user: vm.sshUser ?? endpoint.user,
    port: endpoint.port,
    host: endpoint.host,
    command,
  });
  const { code, stderr } = await runClient(ssh, args, io);
  // 255 is ssh's own failure; a refused host key then gets castra's explanation and hint.
  if (code === 255) {
    const mismatch = hostKeyMismatchError(stderr, where);
    if (mismatch) throw mismatch;
  }
  return code;
}

function chooseVm(project: Project, name: string | undefined): VmConfig {
  const names = project.vms.map((vm) => vm.name).join(", ");
  if (name === undefined) {
    const [only, ...others] = project.vms;
    if (only && others.length === 0) return only;
    throw new UsageError("Which VM? This project has several", {
      detail: `VMs: ${names}`,
      hint: `name one: castra ssh ${project.vms[0]?.name ?? "VM"} [-- COMMAND…]`,
    });
  }
  const vm = project.vms.find((v) => v.name === name);
  if (vm) return vm;
  throw new UsageError(`No VM named ${JSON.stringify(name)} in this project`, {
    detail: `VMs: ${names}. To run a command on the only VM, put it after --: castra ssh -- ${name}`,
    hint: `name one of them: castra ssh ${project.vms[0]?.name ?? "VM"}`,
  });
}

async function runningEndpoint(project: Project, vm: VmConfig, io: IO): Promise<SshEndpoint> {
  const status = await vmStatus(project, vm);
  if (status.state !== "running" && status.state !== "starting") {
    const what = status.state === "error" ? "stopped unexpectedly" : status.state.replace("_", " ");
    throw new UnavailableError(`vm ${vm.name} is not running (${what})`, {
      hint:
        status.state === "shutting_down"
          ? "wait for `castra down` to finish, then run `castra up`"
          : "start it with `castra up`",
    });
  }
  const ssh = status.record?.ssh;
  if (!ssh) {
    throw new UnavailableError(`vm ${vm.name} has no SSH forward`, {
      detail:
        vm.ssh === false
          ? "castra.toml sets ssh = false for this VM."
          : "It was started without one (by an older castra, or before ssh was enabled).",
      hint:
        vm.ssh === false
          ? `remove ssh = false from vm ${vm.name} in castra.toml, then \`castra down\` and \`castra up\``
          : "run `castra down`, then `castra up`",
    });
  }
  if (status.state === "starting") io.info(`${vm.name} is still booting: its SSH server may not answer yet`);
  return ssh;
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
