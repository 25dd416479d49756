import { chmod, readFile, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import { findOnPath } from "../../src/host/tools.js";
import { parseMetadataReport } from "../support/guest.js";
import { freePort } from "../support/processes.js";
import { byoProject, GUEST_APPEND, guestCatalog, serveGuestImage, writeJson } from "./fixtures.js";
import {
  type CaseContext,
  castraBin,
  errorLine,
  exitOf,
  oneLine,
  type RunResult,
  type Scenario,
  sleep,
  until,
} from "./harness.js";

/** EC2's instance-metadata service over IPv6 (Nitro): what a guest with IPv6 would ask for the host's keys. */
const IMDS_IPV6 = "fd00:ec2::254";
const HOST_SECRET = "HOST-ROLE-CREDENTIALS-must-not-reach-a-guest";
/** Where guests of the default subnet reach castra's host broker. */
const BROKER_ADDRESS = "169.254.2.4";

/** A project whose one VM `vm` runs the catalog's test guest, with extra kernel command-line words. */
async function managedProject(ctx: CaseContext, name: string, words: string, tail = "") {
  const dir = await ctx.dir("project");
  const server = await ctx.server();
  await serveGuestImage(server);
  const catalog = await guestCatalog(server.origin);
  const profile = catalog.images[0]?.profile as Record<string, unknown>;
  profile.append = `${GUEST_APPEND} ${words}`;
  profile.metadata = "ec2";
  const file = await writeJson(join(ctx.root, "catalog.json"), catalog);
  // No SSH server in these guests: `up` must not wait for one.
  const vm = `[[vms]]\nname = "vm"\nmanaged_image = { name = "alpine-minimal", version = "v1" }\nssh = false`;
  await writeFile(join(dir, "castra.toml"), `[project]\nname = "${name}"\n\n${vm}\n\n${tail}\n`);
  const env = { CASTRA_CATALOG: file };
  const castra = (args: string[]) => ctx.castra(args, { cwd: dir, env, timeoutMs: 200_000 });
  return { dir, env, castra, serial: join(dir, ".castra", "logs", "vm-serial.log") };
}

/**
 * In a private network namespace (nothing leaves the machine), a fake host metadata service answers
 * `http://[fd00:ec2::254]/` with credentials; the guest asks it, and castra's own 169.254.169.254.
 */
const ipv6Metadata: Scenario = {
  name: "ipv6 metadata",
  timeoutMs: 300_000,
  async run(ctx) {
    const p = await managedProject(
      ctx,
      `faults-ipv6-${process.pid}`,
      `castra.metadata=1 castra.mdtimeout=10 castra.probe=[${IMDS_IPV6}]`,
    );
    // Downloaded here: the namespace has no route to the fixture server, so `up` there is a cache hit.
    const pull = await p.castra(["images", "pull"]);
    const service = `require("http").createServer((q, s) => s.end(${JSON.stringify(JSON.stringify({ AccessKeyId: HOST_SECRET }))})).listen(80, "${IMDS_IPV6}")`;
    const script = [
      `ip link set lo up && ip -6 addr add ${IMDS_IPV6}/128 dev lo nodad || exit 99`,
      `"$1" -e "$2" & service=$!`,
      "shift 2",
      `"$@"; code=$?`,
      `kill $service`,
      "exit $code",
    ].join("\n");
    const up = await ctx.exec(
      "unshare",
      ["-n", "sh", "-c", script, "sh", process.execPath, service, process.execPath, castraBin(), "up"],
      { cwd: p.dir, env: p.env, timeoutMs: 240_000 },
    );
    const serialText = await readFile(p.serial, "utf8").catch(() => "");
    if (process.env.CASTRA_FAULTS_VERBOSE === "1") process.stderr.write(serialText);
    const report = parseMetadataReport(serialText);
    await p.castra(["down", "--timeout", "5"]);
    const probe = report.find((r) => r.path.startsWith("probe/"));
    const own = report.find((r) => r.path === "latest/meta-data/iam/security-credentials/");
    const leaked = report.some((r) => r.body.includes(HOST_SECRET));
    ctx.check(
      `guest asks the host's IPv6 metadata address [${IMDS_IPV6}] (fake service in a network namespace)`,
      "no answer from the host's service (the guest has no IPv6); 169.254.169.254 is castra's own (404)",
      `pull ${exitOf(pull)}, up ${exitOf(up)}; [${IMDS_IPV6}]: ${probe ? `${probe.status} http=${probe.http}` : "NOT ASKED"}${leaked ? ", CREDENTIALS LEAKED" : ""}; 169.254.169.254 iam: http=${own?.http ?? "not asked"}`,
      up.code === 0 && probe?.status === "fail" && !leaked && own?.http === "404",
    );
  },
};

/** Opens `count` connections to 127.0.0.1:`port` and keeps them; resolves with those still open after 1 s. */
async function holdConnections(port: number, count: number): Promise<Socket[]> {
  const sockets = Array.from({ length: count }, () => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.on("error", () => {});
    return socket;
  });
  await sleep(1000);
  return sockets.filter((s) => !s.destroyed && s.readyState === "open");
}

/**
 * Any guest on this host reaches the host's loopback through its gateway; here the test plays that guest
 * from 127.0.0.1 itself and holds more connections than the broker has slots before the VM says hello.
 */
const brokerSlots: Scenario = {
  name: "broker slots",
  timeoutMs: 300_000,
  async run(ctx) {
    const port = await freePort();
    const words = `castra.broker=${port} castra.vm=vm castra.brokerhost=${BROKER_ADDRESS}`;
    const p = await managedProject(ctx, `faults-broker-${process.pid}`, words, `[broker]\nport = ${port}`);
    const up = await p.castra(["up", "--no-wait"]);
    const held = await holdConnections(port, 70);
    const said = /castra-test-guest: broker (hello sent to \S+|unreachable.*)/;
    await until(async () => said.test(await readFile(p.serial, "utf8").catch(() => "")), 180_000);
    const line = said.exec(await readFile(p.serial, "utf8").catch(() => ""))?.[1] ?? "nothing";
    const status = await p.castra(["status", "--json"]);
    const broker = brokerOf(status);
    for (const s of held) s.destroy();
    await p.castra(["down", "--timeout", "5"]);
    ctx.check(
      "70 idle connections to 127.0.0.1:<broker port> (a foreign guest through its gateway), then the VM's hello",
      "the VM's hello is recorded: status says reachable",
      `up ${exitOf(up)}; ${held.length} of 70 connections held; guest: ${line}; status broker: ${broker}`,
      up.code === 0 && broker === "reachable",
    );
  },
};

function brokerOf(status: RunResult): string {
  try {
    return String((JSON.parse(status.stdout) as { vms: { broker: string }[] }).vms[0]?.broker);
  } catch {
    return `no JSON (${errorLine(status)})`;
  }
}

/**
 * `castra ssh` with a user ssh_config that forwards the agent. A stand-in `ssh` on PATH prints what the
 * real client would use (`ssh -G`); ~ is a private home bind-mounted over the real one in a mount namespace.
 */
const sshAgent: Scenario = {
  name: "ssh agent",
  timeoutMs: 200_000,
  async run(ctx) {
    const dir = await ctx.dir("project");
    await byoProject(dir, { name: `faults-ssh-${process.pid}` });
    const castra = (args: string[]) => ctx.castra(args, { cwd: dir, timeoutMs: 120_000 });
    const up = await castra(["up", "--no-wait"]);
    const home = await ctx.dir("home");
    await ctx.dir("home/.ssh");
    const userConfig = join(homedir(), ".ssh", "config");
    await writeFile(join(home, ".ssh", "config"), "Host *\n  ForwardAgent yes\n  ServerAliveInterval 42\n");
    const bin = await ctx.dir("bin");
    const realSsh = (await findOnPath("ssh")) ?? "/usr/bin/ssh";
    const out = join(ctx.root, "ssh-G.txt");
    await writeFile(join(bin, "ssh"), `#!/bin/sh\nexec "${realSsh}" -G "$@" >"${out}"\n`);
    await chmod(join(bin, "ssh"), 0o755);
    const sshAs = async (env: NodeJS.ProcessEnv) => {
      await writeFile(out, "");
      const result = await ctx.exec(
        "unshare",
        [
          "-m",
          "sh",
          "-c",
          'mount --bind "$1" "$2" || exit 99; shift 2; exec "$@"',
          "sh",
          home,
          homedir(),
          process.execPath,
          castraBin(),
          "ssh",
          "--",
          "true",
        ],
        { cwd: dir, env: { PATH: `${bin}:${process.env.PATH}`, ...env }, timeoutMs: 30_000 },
      );
      const text = await readFile(out, "utf8");
      const option = (key: string) => new RegExp(`^${key} (.*)$`, "im").exec(text)?.[1] ?? "?";
      return {
        result,
        forward: option("forwardagent"),
        only: option("identitiesonly"),
        alive: option("serveraliveinterval"),
      };
    };
    const plain = await sshAs({});
    const own = await sshAs({ CASTRA_SSH_CONFIG: userConfig });
    await castra(["down", "--timeout", "5"]);
    const seen = (r: Awaited<ReturnType<typeof sshAs>>) =>
      `${exitOf(r.result)}, ForwardAgent ${r.forward}, IdentitiesOnly ${r.only}, ServerAliveInterval ${r.alive}${r.result.code === 0 ? "" : `: ${oneLine(r.result.stderr, 80)}`}`;
    ctx.check(
      "`castra ssh` with ~/.ssh/config saying ForwardAgent yes",
      "ForwardAgent no, IdentitiesOnly yes, the user's ssh_config not read (-F none: not its ServerAliveInterval 42)",
      `up ${exitOf(up)}; ${seen(plain)}`,
      up.code === 0 &&
        plain.result.code === 0 &&
        plain.forward === "no" &&
        plain.only === "yes" &&
        plain.alive !== "42",
    );
    ctx.check(
      "`castra ssh` with CASTRA_SSH_CONFIG=~/.ssh/config (the escape hatch)",
      "that config is read (ServerAliveInterval 42), ForwardAgent still no",
      seen(own),
      own.result.code === 0 && own.forward === "no" && own.only === "yes" && own.alive === "42",
    );
  },
};

export const isolationScenarios: Scenario[] = [ipv6Metadata, brokerSlots, sshAgent];
