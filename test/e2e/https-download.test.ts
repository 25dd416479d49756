import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createReadStream, readFileSync, statSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { runCastra } from "../support/cli.js";
import {
  assertSameDisk,
  buildImageFixture,
  fixtureCatalog,
  type ImageFixture,
  writeJson,
} from "../support/image-fixtures.js";

// The real catalog is served over HTTPS: a download through TLS, with a certificate the system trusts
// (here one the test makes and hands to node through NODE_EXTRA_CA_CERTS) and one it does not.
let dir: string;
let fixture: ImageFixture;
let server: Server;
let origin: string;
let certFile: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "castra-https-"));
  fixture = buildImageFixture(dir);
  certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      keyFile,
      "-out",
      certFile,
    ],
    { stdio: "ignore" },
  );
  const files = new Map([fixture.vhd, fixture.kernel, fixture.initrd].map((f) => [`/${f.name}`, f.path]));
  server = createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (req, res) => {
    const path = files.get(req.url ?? "");
    if (!path) return void res.writeHead(404).end();
    res.writeHead(200, { "Content-Length": statSync(path).size });
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

async function pull(name: string, extraCa?: string) {
  const project = join(dir, name);
  await mkdir(project);
  const catalog = writeJson(join(dir, `${name}.json`), fixtureCatalog(fixture, origin));
  const env = { CASTRA_CATALOG: catalog, CASTRA_CACHE_DIR: "off", NODE_EXTRA_CA_CERTS: extraCa ?? "" };
  return { project, result: await runCastra(["images", "pull"], { cwd: project, env }) };
}

test("a managed image downloads over HTTPS from a trusted server", async () => {
  const { project, result } = await pull("trusted", certFile);
  assert.equal(result.code, 0, result.stderr);
  assertSameDisk(fixture.raw, join(project, ".castra/images/alpine-minimal/v1/rootfs.qcow2"));
});

test("an untrusted certificate is a TLS error (exit 69) naming the host, never a download", async () => {
  const { project, result } = await pull("untrusted");
  assert.equal(result.code, 69, result.stderr);
  assert.match(result.stderr, /127\.0\.0\.1/);
  assert.match(result.stderr, /TLS|certificate/i);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
  assert.throws(() => statSync(join(project, ".castra/images/alpine-minimal/v1/rootfs.qcow2")));
});
