import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ensureStateDirs, privateRunDir, UNIX_SOCKET_MAX_BYTES, vmPaths } from "./paths.js";

const dir = await mkdtemp(join(tmpdir(), "castra-paths-"));
after(() => rm(dir, { recursive: true, force: true }));

test("runtime and log files live under .castra/run and .castra/logs, the metadata settings and socket out of guests' reach", () => {
  const p = vmPaths({ stateDir: "/p/.castra" }, { name: "devbox" }, {});
  assert.match(p.metadataConfig, /^\/tmp\/castra-\d+\/[0-9a-f]{16}\/devbox-metadata\.json$/);
  assert.deepEqual(p, {
    pidFile: "/p/.castra/run/devbox.pid",
    stoppingMarker: "/p/.castra/run/devbox.stopping",
    qmpSocket: "/p/.castra/run/devbox.qmp",
    qemuLog: "/p/.castra/logs/devbox.log",
    serialLog: "/p/.castra/logs/devbox-serial.log",
    metadataConfig: p.metadataConfig,
    metadataSocket: p.metadataConfig.replace(".json", ".sock"),
    metadataPidFile: "/p/.castra/run/devbox-metadata.pid",
    metadataLog: "/p/.castra/logs/devbox-metadata.log",
    provisionRecord: "/p/.castra/provision/devbox.json",
    sshPort: "/p/.castra/ssh/devbox.port",
    provisionLog: "/p/.castra/logs/devbox-provision.log",
    mountsRecord: "/p/.castra/run/devbox-mounts.json",
    sshControl: p.metadataConfig.replace("devbox-metadata.json", "devbox.ssh"),
  });
});

test("a project path too long for a unix socket moves the QMP and metadata sockets to a short per-user path", () => {
  const deep = `/${"very-long-directory-name/".repeat(6)}.castra`;
  const withXdg = vmPaths(
    { stateDir: deep },
    { name: "devbox" },
    { XDG_RUNTIME_DIR: "/run/user/1000" },
  ).qmpSocket;
  assert.match(withXdg, /^\/run\/user\/1000\/castra\/[0-9a-f]{16}\.qmp$/);
  const withoutXdg = vmPaths({ stateDir: deep }, { name: "devbox" }, {}).qmpSocket;
  assert.match(withoutXdg, /^\/tmp\/castra-\d+\/[0-9a-f]{16}\.qmp$/);
  assert.ok(Buffer.byteLength(withoutXdg) <= UNIX_SOCKET_MAX_BYTES);
  // Another VM, or the same VM of another project, gets another socket.
  assert.notEqual(vmPaths({ stateDir: deep }, { name: "web" }, {}).qmpSocket, withoutXdg);
  assert.notEqual(vmPaths({ stateDir: `${deep}2` }, { name: "devbox" }, {}).qmpSocket, withoutXdg);
  // The metadata socket is in the private runtime directory already; a VM name too long for it moves it too.
  const metadata = vmPaths({ stateDir: deep }, { name: "devbox" }, {}).metadataSocket;
  assert.equal(metadata, join(privateRunDir({ stateDir: deep }, {}), "devbox-metadata.sock"));
  const longName = "v".repeat(63);
  const moved = vmPaths({ stateDir: deep }, { name: longName }, {}).metadataSocket;
  assert.match(moved, /^\/tmp\/castra-\d+\/[0-9a-f]{16}\.metadata\.sock$/);
});

test(".castra, run, logs and the private runtime directory are created private (0700)", async () => {
  const stateDir = join(dir, "project", ".castra");
  await ensureStateDirs({ stateDir });
  for (const sub of ["", "run", "logs"]) assert.equal((await stat(join(stateDir, sub))).mode & 0o777, 0o700);
  assert.equal((await stat(privateRunDir({ stateDir }))).mode & 0o777, 0o700);
  assert.notEqual(privateRunDir({ stateDir }), privateRunDir({ stateDir: `${stateDir}2` }));
});
