import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { ExitCode } from "../errors.js";
import { buildSshArgs, type SshTarget, sshConfigValue } from "./client.js";
import { hostKeyAlias, hostKeyMismatchError, knownHostsPath } from "./known-hosts.js";

const run = promisify(execFile);
const dir = await mkdtemp(join(tmpdir(), "castra-ssh-client-"));
after(() => rm(dir, { recursive: true, force: true }));

const target: SshTarget = {
  keyPath: "/p/.castra/ssh/id_ed25519",
  knownHostsPath: "/p/.castra/ssh/known_hosts",
  hostKeyAlias: hostKeyAlias("demo", "alpine"),
  user: "alpine",
  port: 42022,
};

test("a shared connection is castra's own: a private socket, kept 15 s after its last use", () => {
  const args = buildSshArgs({ ...target, controlPath: "/tmp/castra-0/ab12/web.ssh", command: ["true"] });
  const at = args.indexOf("ControlMaster=auto");
  assert.deepEqual(args.slice(at - 1, at + 5), [
    "-o",
    "ControlMaster=auto",
    "-o",
    'ControlPath="/tmp/castra-0/ab12/web.ssh"',
    "-o",
    "ControlPersist=15",
  ]);
  assert.ok(
    !buildSshArgs(target).some((a) => a.startsWith("Control")),
    "castra ssh opens its own connection",
  );
});

test("the argv logs in with the project key and known_hosts, at 127.0.0.1, command after the destination", () => {
  assert.deepEqual(buildSshArgs({ ...target, command: ["echo", "hello"] }, [], {}), [
    "-F",
    "none",
    "-o",
    "ForwardAgent=no",
    "-o",
    "ForwardX11=no",
    "-o",
    'IdentityFile="/p/.castra/ssh/id_ed25519"',
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    'UserKnownHostsFile="/p/.castra/ssh/known_hosts"',
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "StrictHostKeyChecking=accept-new",
    "-o",
    "HashKnownHosts=no",
    "-o",
    "HostKeyAlias=castra-demo-alpine",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
    "-p",
    "42022",
    "--",
    "alpine@127.0.0.1",
    "echo",
    "hello",
  ]);
  assert.deepEqual(buildSshArgs(target).slice(-2), ["--", "alpine@127.0.0.1"]);
});

test("CASTRA_SSH_CONFIG names the ssh_config to read instead of none; the agent stays home either way", async () => {
  const own = join(dir, "user-config");
  await writeFile(
    own,
    "Host *\n  ForwardAgent yes\n  ForwardX11 yes\n  IdentitiesOnly no\n  ServerAliveInterval 42\n",
  );
  const args = buildSshArgs(target, [], { CASTRA_SSH_CONFIG: own });
  assert.deepEqual(args.slice(0, 2), ["-F", own]);
  // What the real client makes of it: the file is read, castra's options still win.
  const { stdout } = await run("ssh", ["-G", ...args]);
  const option = (key: string) => new RegExp(`^${key} (.*)$`, "im").exec(stdout)?.[1];
  assert.equal(option("serveraliveinterval"), "42");
  assert.equal(option("forwardagent"), "no");
  assert.equal(option("forwardx11"), "no");
  assert.equal(option("identitiesonly"), "yes");
});

test("aliases keep projects and VMs apart and stay one known_hosts word", () => {
  assert.notEqual(hostKeyAlias("demo", "a"), hostKeyAlias("demo", "b"));
  assert.notEqual(hostKeyAlias("demo", "a"), hostKeyAlias("other", "a"));
  assert.equal(hostKeyAlias("my project", "web_1"), "castra-my-project-web_1");
  assert.equal(knownHostsPath("/p/.castra"), "/p/.castra/ssh/known_hosts");
});

test("the real ssh reads paths with spaces, quotes, backslashes and % exactly", async () => {
  const odd = join(dir, `it's a "dir" \\ 100% x`);
  await mkdir(odd, { recursive: true });
  const args = buildSshArgs({
    ...target,
    keyPath: join(odd, "id_ed25519"),
    knownHostsPath: join(odd, "known_hosts"),
  });
  const { stdout } = await run("ssh", ["-G", ...args]);
  const config = new Map(
    stdout.split("\n").map((l) => [l.slice(0, l.indexOf(" ")), l.slice(l.indexOf(" ") + 1)]),
  );
  assert.equal(config.get("userknownhostsfile"), join(odd, "known_hosts"));
  // `ssh -G` prints IdentityFile before its % expansion, which turns `%%` back into `%`.
  assert.equal(config.get("identityfile"), join(odd, "id_ed25519").replaceAll("%", "%%"));
  assert.equal(config.get("hostkeyalias"), "castra-demo-alpine");
  assert.equal(config.get("stricthostkeychecking"), "accept-new");
  assert.equal(config.get("port"), "42022");
  assert.equal(config.get("user"), "alpine");
  assert.equal(config.get("hostname"), "127.0.0.1");
  assert.throws(() => sshConfigValue("/a\nb"), /line break/);
});

test("other ssh failures are not mistaken for a changed host key; the hint can be pasted", () => {
  const where = { alias: "castra-demo-alpine", knownHostsPath: "/p/kh", vmName: "alpine" };
  const spaced = hostKeyMismatchError("Host key verification failed.", {
    ...where,
    knownHostsPath: "/my dir/kh",
  });
  assert.match(spaced?.hint ?? "", / -f '\/my dir\/kh'$/);
  assert.equal(hostKeyMismatchError("alpine@127.0.0.1: Permission denied (publickey).", where), undefined);
  assert.equal(
    hostKeyMismatchError("ssh: connect to host 127.0.0.1 port 2222: Connection refused", where),
    undefined,
  );
});

describe("against a real SSH server", {
  skip: !existsSync("/usr/sbin/dropbear") && "dropbear not installed",
}, () => {
  const servers: ChildProcess[] = [];
  after(() => {
    for (const server of servers) server.kill("SIGTERM");
  });

  async function freePort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    await new Promise((resolve) => server.close(resolve));
    assert.ok(address && typeof address === "object");
    return address.port;
  }

  async function startDropbear(port: number, hostKeyName: string): Promise<ChildProcess> {
    const hostKey = join(dir, hostKeyName);
    if (!existsSync(hostKey)) await run("dropbearkey", ["-t", "ed25519", "-f", hostKey]);
    const args = [
      "-F",
      "-E",
      "-s",
      "-p",
      `127.0.0.1:${port}`,
      "-r",
      hostKey,
      "-P",
      join(dir, `${hostKeyName}.pid`),
    ];
    const server = spawn("/usr/sbin/dropbear", args, { stdio: "ignore" });
    servers.push(server);
    for (let i = 0; i < 100; i++) {
      const up = await new Promise<boolean>((resolve) => {
        const s = connect(port, "127.0.0.1", () => {
          s.destroy();
          resolve(true);
        }).on("error", () => resolve(false));
      });
      if (up) return server;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("dropbear did not start");
  }

  async function stop(server: ChildProcess): Promise<void> {
    server.kill("SIGTERM");
    if (server.exitCode === null) await new Promise((resolve) => server.once("exit", resolve));
  }

  /** Runs the system ssh with castra's argv; HOME is a temp dir so the user's own files stay untouched. */
  async function ssh(t: SshTarget): Promise<{ code: number; stderr: string }> {
    const home = join(dir, "home");
    await mkdir(home, { recursive: true });
    return run("ssh", buildSshArgs({ ...t, command: ["true"] }), {
      env: { ...process.env, HOME: home },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
  }

  test("the first host key is recorded under the alias; a changed one is refused with a hint that works", async () => {
    const port = await freePort();
    const kh = join(dir, "project", ".castra", "ssh", "known_hosts");
    await mkdir(join(dir, "project", ".castra", "ssh"), { recursive: true });
    const vm = {
      ...target,
      port,
      knownHostsPath: kh,
      keyPath: join(dir, "no-such-key"),
      user: "castra-test",
    };

    let server = await startDropbear(port, "host-a");
    const first = await ssh(vm);
    // Authentication fails (no key is authorized here); the host key was already accepted and recorded.
    assert.doesNotMatch(first.stderr, /Host key verification failed/);
    const recorded = await readFile(kh, "utf8");
    assert.match(recorded, /^castra-demo-alpine ssh-ed25519 /m);
    assert.ok(!existsSync(join(dir, "home", ".ssh", "known_hosts")), "wrote the user's known_hosts");

    await stop(server);
    server = await startDropbear(port, "host-b");
    const changed = await ssh(vm);
    assert.equal(changed.code, 255);
    const err = hostKeyMismatchError(changed.stderr, {
      alias: vm.hostKeyAlias,
      knownHostsPath: kh,
      vmName: "alpine",
    });
    assert.ok(err, `not recognised: ${changed.stderr}`);
    assert.equal(err.exitCode, ExitCode.dataErr);
    assert.equal(
      err.hint,
      `if the VM was recreated, forget the old key: ssh-keygen -R castra-demo-alpine -f ${kh}`,
    );

    // Another VM's alias on the same port is a separate entry, not a conflict.
    const other = await ssh({ ...vm, hostKeyAlias: hostKeyAlias("demo", "other") });
    assert.doesNotMatch(other.stderr, /Host key verification failed/);

    // The hint's command, run as written, lets the new key in.
    const [command = "", ...args] = (err.hint?.split(": ")[1] ?? "").split(" ");
    await run(command, args);
    const again = await ssh(vm);
    assert.doesNotMatch(again.stderr, /Host key verification failed/);
    await stop(server);
  });
});
