import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { fakeMetadataGuestfwd, readFakeMetadataLog } from "./fake-metadata.js";
import {
  buildTestGuest,
  GUEST_APPEND,
  LOGIN_PROMPT,
  parseMetadataReport,
  qemuSkip,
  qmpExecute,
  serialLines,
  startTestQemu,
  type TestGuest,
  type TestQemu,
  waitForLine,
} from "./guest.js";
import { type GuestLogin, makeKeyPair, runInGuest } from "./guest-ssh.js";
import { freePort } from "./processes.js";

const BOOT_TIMEOUT_MS = 180_000;

interface Reporter {
  diagnostic(message: string): void;
}
const exec = promisify(execFile);

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

describe("test guest", { skip: qemuSkip() }, () => {
  let guest: TestGuest;
  let dir: string;
  const started: TestQemu[] = [];

  before(async () => {
    guest = await buildTestGuest();
    dir = mkdtempSync(join(tmpdir(), "castra-guest-"));
  });

  after(() => {
    for (const qemu of started) qemu.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // Boots QEMU with `args` and waits for the login prompt; prints how long it took.
  async function bootToLogin(t: Reporter, name: string, args: string[]): Promise<TestQemu> {
    const qemu = startTestQemu(args, join(dir, `${name}.log`), join(dir, `${name}.qmp`));
    started.push(qemu);
    const begin = Date.now();
    await waitForLine(qemu.serialLog, LOGIN_PROMPT, BOOT_TIMEOUT_MS, { isAlive: qemu.isAlive }).catch((e) => {
      throw new Error(`${e.message}\nqemu stderr: ${qemu.stderr()}`);
    });
    t.diagnostic(`${name}: boot to login in ${((Date.now() - begin) / 1000).toFixed(1)} s`);
    return qemu;
  }

  async function powerDownByAcpi(qemu: TestQemu): Promise<number> {
    const begin = Date.now();
    await qmpExecute(qemu.qmpSocket, ["system_powerdown"]);
    const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 30_000).unref());
    const code = await Promise.race([qemu.exited, timeout]);
    assert.notEqual(code, "timeout", "QEMU did not exit within 30 s of system_powerdown");
    await waitForLine(qemu.serialLog, /power button pressed, powering off/, 1000);
    return Date.now() - begin;
  }

  // Direct kernel boot with the given command-line words.
  function directBoot(words: string): string[] {
    return ["-kernel", guest.kernel, "-initrd", guest.initrd, "-append", `${GUEST_APPEND} ${words}`];
  }

  // Boots the SSH mode behind the fake metadata service, with a fresh key for alpine, plus `words` and `args`.
  async function bootWithSsh(
    t: Reporter,
    name: string,
    words: string,
    options: { args?: string[]; userData?: string },
  ): Promise<{ qemu: TestQemu; login: GuestLogin; publicKey: string }> {
    const { key, publicKey } = makeKeyPair(dir, `${name}-id_ed25519`);
    const paths: Record<string, string> = {
      "/latest/meta-data/public-keys": "0=castra",
      "/latest/meta-data/public-keys/0/openssh-key": publicKey,
      "/latest/meta-data/hostname": "devbox",
      "/latest/meta-data/instance-id": "i-castra",
    };
    if (options.userData !== undefined) paths["/latest/user-data"] = options.userData;
    const guestfwd = fakeMetadataGuestfwd(join(dir, `${name}-metadata.json`), { token: "t0k3n", paths });
    const port = await freePort();
    const netdev = `user,id=n0,net=169.254.0.0/16,hostfwd=tcp:127.0.0.1:${port}-:22,guestfwd=${guestfwd}`;
    const args = directBoot(`castra.ssh=1 castra.mdtimeout=5 ${words}`).concat(
      ["-netdev", netdev, "-device", "virtio-net-pci,netdev=n0"],
      options.args ?? [],
    );
    const qemu = await bootToLogin(t, name, args);
    return { qemu, login: { key, port, knownHosts: join(dir, `${name}-known_hosts`) }, publicKey };
  }

  function overlay(name: string, backing: string, format: string): string {
    const path = join(dir, `${name}.qcow2`);
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", format, "-b", backing, path]);
    return path;
  }

  test("a second build finds everything up to date and returns at once", async () => {
    const begin = Date.now();
    const { stderr } = await exec("bash", [join(import.meta.dirname, "../fixtures/build-guest.sh")]);
    assert.match(stderr, /up to date/);
    assert.ok(Date.now() - begin < 3000, `cached build took ${Date.now() - begin} ms`);
    assert.equal(sha256(readFileSync(guest.kernel)), guest.sha256.vmlinuz);
    assert.equal(statSync(guest.initrd).size, guest.size["initramfs.cpio.gz"]);
  });

  test("rootfs.vhd is the data disk's bytes followed by a fixed-VHD footer", () => {
    const raw = readFileSync(guest.dataDiskRaw);
    const vhd = readFileSync(guest.vhd);
    assert.equal(vhd.length, raw.length + 512);
    const footer = vhd.subarray(raw.length);
    assert.equal(footer.subarray(0, 8).toString("latin1"), "conectix");
    assert.equal(footer.readUInt32BE(60), 2, "disk type 2 (fixed)");
    assert.equal(sha256(vhd.subarray(0, raw.length)), sha256(raw));
  });

  test("the BIOS disk boots to login and powers off through ACPI", { timeout: 300_000 }, async (t) => {
    const disk = overlay("bios", guest.biosDisk, "qcow2");
    const drive = ["-drive", `file=${disk},if=virtio,format=qcow2`];
    const qemu = await bootToLogin(t, "bios", drive);
    try {
      const serial = readFileSync(qemu.serialLog, "utf8");
      assert.match(serial, /SYSLINUX/);
      assert.match(serial, /castra-test-guest: disk=\/dev\/vda2/);
      const ms = await powerDownByAcpi(qemu);
      t.diagnostic(`bios: ACPI power-off in ${(ms / 1000).toFixed(1)} s`);
      assert.equal(await qemu.exited, 0);
    } finally {
      qemu.kill();
    }
  });

  test("direct kernel boot reaches login and powers off through ACPI", { timeout: 300_000 }, async (t) => {
    const args = ["-kernel", guest.kernel, "-initrd", guest.initrd, "-append", GUEST_APPEND];
    const qemu = await bootToLogin(t, "direct", args);
    try {
      await waitForLine(qemu.serialLog, /^castra-test-guest: ready/, 1000);
      const ms = await powerDownByAcpi(qemu);
      t.diagnostic(`direct: ACPI power-off in ${(ms / 1000).toFixed(1)} s`);
    } finally {
      qemu.kill();
    }
  });

  test("disk mode keeps what the guest wrote across a QEMU kill and restart", {
    timeout: 400_000,
  }, async (t) => {
    const disk = overlay("data", guest.dataDiskRaw, "raw");
    const word = `w${randomBytes(4).toString("hex")}`;
    const boot = (name: string, extra: string) =>
      bootToLogin(
        t,
        name,
        [
          "-kernel",
          guest.kernel,
          "-initrd",
          guest.initrd,
          "-append",
          `${GUEST_APPEND} castra.disk=1 ${extra}`,
        ].concat(["-drive", `file=${disk},if=virtio,format=qcow2`]),
      );
    const first = await boot("data-1", `castra.write=${word}`);
    try {
      await waitForLine(first.serialLog, new RegExp(`^castra-test-guest: wrote data=${word}$`), 1000);
    } finally {
      first.kill();
      await first.exited;
    }
    const second = await boot("data-2", "");
    try {
      await waitForLine(second.serialLog, new RegExp(`^castra-test-guest: data=${word}$`), 1000);
      await waitForLine(second.serialLog, /^castra-test-guest: boots=2$/, 1000);
    } finally {
      second.kill();
    }
  });

  test("with e1000 the guest gets a 169.254 lease and greets the broker", { timeout: 300_000 }, async (t) => {
    const greetings: string[] = [];
    const broker = createServer((socket) => socket.on("data", (d) => greetings.push(String(d))));
    await new Promise<void>((resolve) => broker.listen(0, "127.0.0.1", resolve));
    const port = (broker.address() as { port: number }).port;
    const append = `${GUEST_APPEND} castra.broker=${port} castra.vm=devbox`;
    const args = ["-kernel", guest.kernel, "-initrd", guest.initrd, "-append", append];
    const netdev = ["-netdev", "user,id=n0,net=169.254.0.0/16", "-device", "e1000,netdev=n0"];
    let qemu: TestQemu | undefined;
    try {
      qemu = await bootToLogin(t, "broker", args.concat(netdev));
      const ip = await waitForLine(qemu.serialLog, /^castra-test-guest: ip=/, 1000);
      assert.match(ip, /ip=169\.254\.\d+\.\d+ gateway=169\.254\.\d+\.\d+ driver=e1000$/);
      assert.deepEqual(greetings, ["hello devbox\n"]);
    } finally {
      qemu?.kill();
      broker.close();
    }
  });

  test("with virtio-net the guest reads castra-style metadata, serves SSH and gives alpine root through doas", {
    timeout: 300_000,
  }, async (t) => {
    const userData = "#!/bin/sh\necho from user-data\n";
    const { qemu, login, publicKey } = await bootWithSsh(t, "ssh", "", { userData });
    try {
      const results = parseMetadataReport(readFileSync(qemu.serialLog, "utf8"));
      const find = (path: string, token: string) => results.find((r) => r.path === path && r.token === token);
      t.diagnostic(`metadata requests, guest-side ms: ${results.map((r) => r.ms).join(", ")}`);
      assert.equal(find("latest/api/token", "put")?.body, "t0k3n");
      assert.equal(find("latest/meta-data/public-keys", "yes")?.body, "0=castra");
      assert.equal(find("latest/meta-data/public-keys/0/openssh-key", "yes")?.body, publicKey.trim());
      assert.equal(find("latest/meta-data/hostname", "yes")?.body, "devbox");
      assert.equal(find("latest/user-data", "yes")?.sha256, sha256(Buffer.from(userData)));
      assert.equal(find("latest/meta-data/instance-id", "none")?.status, "ok");
      assert.equal(find("latest/meta-data/hostname", "wrong")?.http, "401");
      assert.equal(find("latest/meta-data/iam/security-credentials/", "yes")?.http, "404");
      const hostKey = await waitForLine(qemu.serialLog, /^castra-test-guest: ssh=dropbear/, 1000);
      assert.deepEqual(await runInGuest(login, "echo hello"), { code: 0, stdout: "hello\n", stderr: "" });
      const served = readFileSync(login.knownHosts, "utf8").trim().split(/\s+/).slice(1).join(" ");
      assert.ok(hostKey.endsWith(`hostkey=${served}`), `${hostKey} vs known_hosts ${served}`);
      // Like Alpine's cloud images: alpine is in wheel, and doas.conf says `permit nopass :wheel`.
      assert.deepEqual(await runInGuest(login, "id -u; doas id -u"), {
        code: 0,
        stdout: "1000\n0\n",
        stderr: "",
      });
    } finally {
      qemu.kill();
    }
  });

  test("9p shares: alpine reads the host's files and writes as the host's user; a readonly export refuses", {
    timeout: 300_000,
  }, async (t) => {
    // mkdtemp makes 0700 directories owned by whoever runs the test: the guest must give rw to alpine.
    const rw = mkdtempSync(join(dir, "share-rw-"));
    const ro = mkdtempSync(join(dir, "share-ro-"));
    chmodSync(ro, 0o755);
    const content = `from the host ${randomBytes(4).toString("hex")}\n`;
    writeFileSync(join(ro, "hello.txt"), content);
    const args = share9p("rw", rw, "").concat(share9p("ro", ro, ",readonly=on"));
    const words = "castra.mount9p=rw:/mnt/rw,ro:/mnt/ro:ro";
    const { qemu, login } = await bootWithSsh(t, "share", words, { args });
    try {
      const serial = readFileSync(qemu.serialLog, "utf8");
      assert.match(serial, /^castra-test-guest: mount9p tag=rw dir=\/mnt\/rw mode=rw status=ok$/m);
      assert.match(serial, /^castra-test-guest: mount9p tag=ro dir=\/mnt\/ro mode=ro status=ok$/m);
      assert.deepEqual(await runInGuest(login, "cat /mnt/ro/hello.txt"), {
        code: 0,
        stdout: content,
        stderr: "",
      });
      const write = await runInGuest(login, "id -u && echo written >/mnt/rw/from-guest.txt");
      assert.deepEqual(write, { code: 0, stdout: "1000\n", stderr: "" });
      const made = statSync(join(rw, "from-guest.txt"));
      assert.equal(readFileSync(join(rw, "from-guest.txt"), "utf8"), "written\n");
      assert.equal(made.uid, process.getuid?.(), "owned on the host by the user running QEMU");
      assert.equal(made.mode & 0o777, 0o644, "the host mode is the export's fmode");
      const refused = await runInGuest(login, "echo refused >/mnt/ro/refused.txt");
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /Read-only file system/);
      assert.ok(!existsSync(join(ro, "refused.txt")));
    } finally {
      qemu.kill();
    }
  });

  test("with castra.no9p=1 the guest has no 9p support: a share does not mount", {
    timeout: 300_000,
  }, async (t) => {
    const share = mkdtempSync(join(dir, "share-no9p-"));
    const args = directBoot("castra.no9p=1 castra.mount9p=rw:/mnt/rw").concat(share9p("rw", share, ""));
    const qemu = await bootToLogin(t, "no9p", args);
    try {
      const line = await waitForLine(qemu.serialLog, /^castra-test-guest: mount9p /, 1000);
      assert.match(line, /tag=rw dir=\/mnt\/rw mode=rw status=fail error=.*No such device$/);
    } finally {
      qemu.kill();
    }
  });

  test("the counter ticks each second after the prompt and carries on in a restored copy of the VM", {
    timeout: 300_000,
  }, async (t) => {
    const args = directBoot("castra.counter=1");
    const first = await bootToLogin(t, "counter", args);
    const state = join(dir, "counter.state");
    let lastSaved = 0;
    try {
      await waitForLine(first.serialLog, /^castra-test-guest: counter=2$/, 30_000);
      const lines = serialLines(readFileSync(first.serialLog, "utf8"));
      const ready = lines.findIndex((line) => line.startsWith("castra-test-guest: ready"));
      const prompt = lines.indexOf("castra-test-guest login: ");
      assert.ok(ready < prompt && prompt < lines.indexOf("castra-test-guest: counter=1"), lines.join("\n"));
      await saveStateToFile(first.qmpSocket, state);
      lastSaved = counters(first.serialLog).at(-1) ?? 0;
    } finally {
      first.kill();
      await first.exited;
    }
    const restored = startTestQemu(
      args.concat(["-incoming", `exec:cat ${state}`]),
      join(dir, "counter-restored.log"),
      join(dir, "counter-restored.qmp"),
    );
    started.push(restored);
    try {
      const restoredLine = /^castra-test-guest: counter=\d+$/;
      await waitForLine(restored.serialLog, restoredLine, 60_000, { isAlive: restored.isAlive });
      const resumed = counters(restored.serialLog)[0] ?? 0;
      t.diagnostic(`counter: saved after ${lastSaved}, the restored VM went on with ${resumed}`);
      assert.ok(
        resumed > lastSaved && resumed <= lastSaved + 2,
        `saved at ${lastSaved}, resumed at ${resumed}`,
      );
    } finally {
      restored.kill();
    }
  });

  test("the metadata load tools time request pairs, flood the metadata address and hog one answer", {
    timeout: 300_000,
  }, async (t) => {
    const reference = await startReferenceServer();
    const log = join(dir, "load-metadata.log");
    const guestfwd = fakeMetadataGuestfwd(join(dir, "load-metadata.json"), {
      token: "t0k3n",
      paths: { "/latest/meta-data/instance-id": "i-castra" },
      userDataBytes: 16 * 1024 * 1024,
      log,
    });
    const words = `castra.mdtimeout=5 castra.mdbench=3 castra.mdref=${reference.port} castra.mdflood=5 castra.mdhold=2`;
    const netdev = ["-netdev", `user,id=n0,net=169.254.0.0/16,guestfwd=${guestfwd}`];
    const args = directBoot(`${words} castra.mdhog=1`).concat(netdev, [
      "-device",
      "virtio-net-pci,netdev=n0",
    ]);
    let qemu: TestQemu | undefined;
    let hogPid: number | undefined;
    try {
      qemu = await bootToLogin(t, "mdload", args);
      const lines = serialLines(readFileSync(qemu.serialLog, "utf8"));
      const bench = benchResults(lines);
      t.diagnostic(`mdbench ms: ${bench.map((b) => `${b.target}#${b.round}=${b.ms}`).join(" ")}`);
      const order = ["meta1", "ref1", "ref2", "meta2", "meta3", "ref3"];
      assert.deepEqual(
        bench.map((b) => `${b.target}${b.round}:${b.status}`),
        order.map((o) => `${o}:ok`),
      );
      assert.ok(lines.includes("castra-test-guest: mdbench done"));
      const pair = ["PUT /latest/api/token", "GET /latest/meta-data/instance-id"];
      assert.deepEqual(reference.requests, [...pair, ...pair, ...pair]);

      assert.ok(lines.includes("castra-test-guest: mdflood opened=5"), lines.join("\n"));
      assert.ok(
        lines.indexOf("castra-test-guest: mdflood closed") >
          lines.indexOf("castra-test-guest: mdflood opened=5"),
      );
      assert.ok(lines.some((line) => /^castra-test-guest: mdflood after ms=\d+ status=ok$/.test(line)));
      const abandoned = () =>
        readFakeMetadataLog(log).filter(
          (e) => e.event === "abandoned" && e.detail === '"GET /latest/meta-data/inst"',
        );
      assert.ok(await eventually(() => abandoned().length === 5, 10_000), `abandoned: ${abandoned().length}`);

      assert.ok(lines.includes("castra-test-guest: mdhog started"));
      // The guest reports once connected; QEMU's responder process may log the request a moment later.
      const hogRequest = () =>
        readFakeMetadataLog(log).find((e) => e.event === "request" && e.detail === "GET /latest/user-data");
      await eventually(() => hogRequest() !== undefined, 10_000);
      const hog = hogRequest();
      assert.ok(hog, "the hog asked for user-data");
      hogPid = hog.pid;
      await sleep(3000);
      const ended = readFakeMetadataLog(log).some(
        (e) => e.pid === hog.pid && (e.event === "answered" || e.event === "failed"),
      );
      assert.ok(!ended, "the guest never took the whole user-data answer");
      assert.ok(processAlive(hog.pid), "the responder is still there, stuck writing");
    } finally {
      qemu?.kill();
      reference.close();
      // Once QEMU is gone the stuck responder fails its write and exits: let it, before the directory goes.
      const stuck = hogPid;
      if (stuck !== undefined) await eventually(() => !processAlive(stuck), 10_000);
    }
  });
});

const BENCH_LINE = /^castra-test-guest: mdbench target=(meta|ref) i=(\d+) ms=(\d+) status=(ok|fail)$/;

/** The `mdbench` lines of a serial log, in order. */
function benchResults(lines: string[]): { target: string; round: number; ms: number; status: string }[] {
  return lines.flatMap((line) => {
    const m = BENCH_LINE.exec(line);
    return m ? [{ target: m[1] ?? "", round: Number(m[2]), ms: Number(m[3]), status: m[4] ?? "" }] : [];
  });
}

/** The numbers of the `counter=N` lines of a serial log, in order. */
function counters(serialLog: string): number[] {
  return serialLines(readFileSync(serialLog, "utf8")).flatMap((line) => {
    const m = /^castra-test-guest: counter=(\d+)$/.exec(line);
    return m ? [Number(m[1])] : [];
  });
}

/** QEMU arguments that export `path` as the 9p share `tag` the way the guest's findings recommend. */
function share9p(tag: string, path: string, extra: string): string[] {
  const fsdev = `local,id=${tag},path=${path},security_model=mapped-xattr,fmode=0644,dmode=0755${extra}`;
  return ["-fsdev", fsdev, "-device", `virtio-9p-pci,fsdev=${tag},mount_tag=${tag}`];
}

// Saves the VM's whole state into `file` (a migration into `cat`) and waits until it is complete.
async function saveStateToFile(qmpSocket: string, file: string): Promise<void> {
  await qmpExecute(qmpSocket, [{ execute: "migrate", arguments: { uri: `exec:cat > ${file}` } }]);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const [reply] = (await qmpExecute(qmpSocket, ["query-migrate"])) as { return?: { status?: string } }[];
    const status = reply?.return?.status;
    if (status === "completed") return;
    if (status === "failed" || Date.now() > deadline) throw new Error(`saving the VM to ${file}: ${status}`);
    await sleep(200);
  }
}

// The reference for mdbench: a plain HTTP server on 127.0.0.1 with the metadata service's token dance.
async function startReferenceServer(): Promise<{ port: number; requests: string[]; close(): void }> {
  const requests: string[] = [];
  const server = createHttpServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.method === "PUT") res.end("reference-token");
    else if (req.headers["x-aws-ec2-metadata-token"] === "reference-token") res.end("i-reference");
    else res.writeHead(401).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { port, requests, close: () => server.close() };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function eventually(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
  return true;
}
