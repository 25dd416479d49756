import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseProject } from "../config/load.js";
import type { Project } from "../config/model.js";
import { CastraError } from "../errors.js";
import { readResponderConfig } from "../metadata/config.js";
import { prepareGuestNetwork, settleGuestAccess } from "./guest-access.js";
import { userNetworkAddresses } from "./guest-addresses.js";
import { guestMac } from "./guest-network.js";
import { vmPaths } from "./paths.js";

const root = await realpath(await mkdtemp(join(tmpdir(), "castra-guest-access-")));
after(() => rm(root, { recursive: true, force: true }));
let count = 0;

/** A project in a fresh directory from castra.toml text (its VMs use bring-your-own images). */
async function project(toml: string): Promise<Project> {
  const dir = join(root, `p${++count}`);
  await mkdir(dir, { recursive: true });
  const text = `[project]\nname = "demo"\n${toml}`;
  await writeFile(join(dir, "castra.toml"), text);
  return parseProject(text, join(dir, "castra.toml"));
}

const settle = (p: Project) =>
  settleGuestAccess(
    p,
    p.vms.map((vm) => ({ vm, base: {} })),
  );

/** What `up` settles and prepares for the only VM of `p`, right before its QEMU would start. */
async function prepare(p: Project, takenPorts = new Set<number>()) {
  const [vm] = p.vms;
  const [access] = (await settle(p)).accesses;
  assert.ok(vm && access);
  const paths = vmPaths(p, vm);
  const perlPath = "/usr/bin/perl";
  const prepared = await prepareGuestNetwork({ project: p, vm, access, paths, perlPath, takenPorts });
  return { access, paths, ...prepared };
}

async function rejection(promise: Promise<unknown>): Promise<CastraError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof CastraError, String(err));
    return err;
  }
  assert.fail("expected a CastraError");
}

test("QEMU's user-network addresses for castra's subnet and a classic one", () => {
  assert.deepEqual(userNetworkAddresses("169.254.0.0/16"), {
    gateway: "169.254.2.2",
    dns: "169.254.2.3",
    broker: "169.254.2.4",
    guest: "169.254.2.15",
  });
  assert.deepEqual(userNetworkAddresses("10.0.2.0/24"), {
    gateway: "10.0.2.2",
    dns: "10.0.2.3",
    broker: "10.0.2.4",
    guest: "10.0.2.15",
  });
});

test("a VM's MAC is QEMU-local, stable, and differs between VMs", () => {
  assert.match(guestMac("demo", "web"), /^52:54:00(:[0-9a-f]{2}){3}$/);
  assert.equal(guestMac("demo", "web"), guestMac("demo", "web"));
  assert.notEqual(guestMac("demo", "web"), guestMac("demo", "db"));
});

test("a BYO VM gets no metadata and root by default; the project key is created and served first", async () => {
  const p = await project('[[vms]]\nname = "box"\nbase_image = "b.qcow2"\n');
  const { accesses, warnings } = await settle(p);
  const [access] = accesses;
  assert.deepEqual(warnings, []);
  assert.equal(access?.flavour, "none");
  assert.equal(access?.sshUser, "root");
  assert.equal(access?.servesMetadata, true);
  const pub = (await readFile(join(p.stateDir, "ssh", "id_ed25519.pub"), "utf8")).trim();
  assert.deepEqual(access?.publicKeys, [pub]);
  assert.equal((await stat(join(p.stateDir, "ssh", "id_ed25519"))).mode & 0o777, 0o600);
});

test("the profile's flavour and login user apply unless castra.toml says otherwise", async () => {
  const p = await project(
    '[[vms]]\nname = "a"\nbase_image = "b.qcow2"\n[[vms]]\nname = "b"\nbase_image = "b.qcow2"\nmetadata = "none"\nssh_user = "me"\n',
  );
  const boot = { metadata: "ec2" as const, loginUser: "alpine" };
  const { accesses } = await settleGuestAccess(
    p,
    p.vms.map((vm) => ({ vm, base: { boot } })),
  );
  assert.deepEqual(
    accesses.map((a) => [a.flavour, a.sshUser]),
    [
      ["ec2", "alpine"],
      ["none", "me"],
    ],
  );
});

test("authorized_keys adds public keys after the project key and refuses a private key", async () => {
  const p = await project(
    '[[vms]]\nname = "box"\nbase_image = "b.qcow2"\nmetadata = "ec2"\nauthorized_keys = ["keys/extra.pub"]\n',
  );
  const extra = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC1hbm90aGVyLWtleS1mb3ItdGVzdHMtb25seS0tLS0t extra@test";
  await mkdir(join(p.rootDir, "keys"));
  await writeFile(join(p.rootDir, "keys", "extra.pub"), `${extra}\n`);
  const { accesses } = await settle(p);
  assert.equal(accesses[0]?.publicKeys.length, 2);
  assert.equal(accesses[0]?.publicKeys[1], extra);

  await writeFile(join(p.rootDir, "keys", "extra.pub"), "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n");
  const err = await rejection(settle(p));
  assert.equal(err.exitCode, 65);
  assert.match(err.headline, /vms\[0\]\.authorized_keys\[0\] is a private key/);
});

test("a missing user_data file stops `up` before anything starts (exit 66)", async () => {
  const p = await project('[[vms]]\nname = "box"\nbase_image = "b.qcow2"\nuser_data = "user-data.sh"\n');
  const err = await rejection(settle(p));
  assert.equal(err.exitCode, 66);
  assert.match(err.headline, /user_data of vm box: user-data\.sh does not exist/);
});

test("ssh = false and no metadata need no key; a custom subnet warns that the host's metadata is reachable", async () => {
  const p = await project(
    '[[vms]]\nname = "lan"\nbase_image = "b.qcow2"\nssh = false\nsubnet = "10.0.2.0/24"\n',
  );
  const { accesses, warnings } = await settle(p);
  assert.equal(accesses[0]?.sshUser, undefined);
  assert.equal(accesses[0]?.servesMetadata, false);
  await assert.rejects(stat(join(p.stateDir, "ssh")), "no key pair is created");
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0] ?? "",
    /vm lan: subnet 10\.0\.2\.0\/24 leaves 169\.254\.169\.254 outside the guest's network/,
  );
  assert.match(warnings[0] ?? "", /host's own instance-metadata service .* is reachable from this guest/);
});

test("prepareGuestNetwork writes the metadata server's config (0600) matching the NIC and picks a free SSH port", async () => {
  const p = await project(
    '[[vms]]\nname = "box_1"\nbase_image = "b.qcow2"\nmetadata = "ec2"\nuser_data = "ud"\n',
  );
  await writeFile(join(p.rootDir, "ud"), "#!/bin/sh\n");
  const taken = new Set<number>();
  const { access, paths, network, ssh } = await prepare(p, taken);
  assert.equal(network.subnet, "169.254.0.0/16");
  assert.match(
    network.guestfwd ?? "",
    /^tcp:169\.254\.169\.254:80-cmd:'\/usr\/bin\/perl' '-e' '.*' '--' '(.*)' '3' '10'$/,
  );
  assert.ok(network.guestfwd?.endsWith(`'--' '${paths.metadataSocket}' '3' '10'`));
  assert.equal((await stat(paths.metadataConfig)).mode & 0o777, 0o600);
  const config = await readResponderConfig(paths.metadataConfig);
  assert.equal(config.flavour, "ec2");
  assert.equal(config.hostname, "box-1");
  assert.equal(config.localIpv4, "169.254.2.15");
  assert.equal(config.mac, network.mac);
  assert.match(config.instanceId, /^i-[0-9a-f]{17}$/);
  assert.deepEqual(config.publicKeys, access.publicKeys);
  assert.equal(config.userDataPath, join(p.rootDir, "ud"));
  assert.equal(config.logPath, paths.metadataLog);
  assert.equal(config.socketPath, paths.metadataSocket);
  assert.equal(config.vmPidFile, paths.pidFile);
  assert.ok(ssh?.automatic && ssh.host === "127.0.0.1" && ssh.user === "root");
  assert.deepEqual(network.sshForward, {
    host: ssh.port,
    guest: 22,
    protocol: "tcp",
    hostAddress: "127.0.0.1",
  });
  assert.ok(taken.has(ssh.port), "the chosen port is reserved for the rest of this `up`");
});

test("a declared forward to guest port 22 is reused for SSH; flavour none serves no keys", async () => {
  const p = await project(
    '[[vms]]\nname = "box"\nbase_image = "b.qcow2"\n[[vms.port_forwards]]\nhost = 2222\nguest = 22\nhost_address = "0.0.0.0"\n',
  );
  const { paths, network, ssh } = await prepare(p);
  // flavour none: castra handed the guest no key, so up does not wait for SSH to take it.
  assert.deepEqual(ssh, { host: "127.0.0.1", port: 2222, user: "root", automatic: false, keyServed: false });
  assert.equal(network.sshForward, undefined);
  const config = await readResponderConfig(paths.metadataConfig);
  assert.equal(config.flavour, "none");
  assert.deepEqual(config.publicKeys, []);
});

test("a custom subnet gets no guestfwd and no metadata server config", async () => {
  const p = await project('[[vms]]\nname = "lan"\nbase_image = "b.qcow2"\nsubnet = "10.0.2.0/24"\n');
  const { paths, network } = await prepare(p);
  assert.equal(network.guestfwd, undefined);
  assert.equal(network.subnet, "10.0.2.0/24");
  await assert.rejects(stat(paths.metadataConfig));
});

test("a VM keeps its automatic SSH port across restarts while the port is free, else gets another", async () => {
  const p = await project('[[vms]]\nname = "box"\nbase_image = "b.qcow2"\n');
  const first = (await prepare(p)).ssh?.port;
  assert.ok(first);
  assert.equal((await prepare(p)).ssh?.port, first, "the same port the second time");
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(first, "127.0.0.1", resolve));
  try {
    const other = (await prepare(p)).ssh?.port;
    assert.ok(other && other !== first, "a port someone else holds is not reused");
  } finally {
    await new Promise((resolve) => busy.close(resolve));
  }
});
