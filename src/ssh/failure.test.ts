import assert from "node:assert/strict";
import { test } from "node:test";
import { classifySshFailure } from "./failure.js";
import { sshOptionForm } from "./options.js";

test("ssh's own failures are told apart by what OpenSSH prints", () => {
  const cases: [string, ReturnType<typeof classifySshFailure>][] = [
    ["alpine@127.0.0.1: Permission denied (publickey).", "key-refused"],
    ["kex_exchange_identification: read: Connection reset by peer", "no-server"],
    ["kex_exchange_identification: Connection closed by remote host", "no-server"],
    ["Connection closed by 127.0.0.1 port 40222", "no-server"],
    ["Connection timed out during banner exchange", "no-answer"],
    ["ssh: connect to host 127.0.0.1 port 40222: Connection refused", "port-closed"],
    ["tar: short read", undefined],
  ];
  for (const [stderr, kind] of cases) assert.equal(classifySshFailure(`${stderr}\n`), kind, stderr);
});

test("the hint's ssh_config form of ssh's forwarding options", () => {
  assert.equal(sshOptionForm(["-L", "8080:localhost:80"]), "LocalForward 8080 localhost:80");
  assert.equal(sshOptionForm(["-L127.0.0.1:8080:db:5432"]), "LocalForward 127.0.0.1:8080 db:5432");
  assert.equal(sshOptionForm(["-R", "9000:localhost:9000"]), "RemoteForward 9000 localhost:9000");
  assert.equal(sshOptionForm(["-D", "1080"]), "DynamicForward 1080");
  assert.equal(sshOptionForm(["-A"]), "ForwardAgent yes");
  assert.equal(sshOptionForm(["-L"]), undefined);
  assert.equal(sshOptionForm(["-v"]), undefined);
});
