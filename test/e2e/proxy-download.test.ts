import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, test } from "node:test";
import { type CliResult, runCastra } from "../support/cli.js";
import { ForwardProxy } from "../support/forward-proxy.js";
import { closedPort, FixtureServer } from "../support/http-server.js";
import {
  assertSameDisk,
  buildImageFixture,
  fixtureCatalog,
  type ImageFixture,
  writeJson,
} from "../support/image-fixtures.js";

// The catalog's host exists only in the test proxy's table: a download that succeeds went through the proxy.
const HOST = "images.castra.invalid";
const CREDENTIALS = { user: "ann", password: "s3cret:p@ss" };
const SECRET = "s3cret";
const IMAGE_DIR = join(".castra", "images", "alpine-minimal", "v1");

let dir: string;
let fixture: ImageFixture;
let caFile: string;
let plain: FixtureServer;
let tls: FixtureServer;
let proxy: ForwardProxy;
let open: ForwardProxy;

/** A CA, and a certificate it signed for `HOST` only. */
function makeCertificates(): { key: Buffer; cert: Buffer } {
  const file = (name: string) => join(dir, name);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const openssl = (args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
  openssl(
    ["req", "-x509", ...ec, "-days", "1", "-subj", "/CN=castra test CA", "-keyout", file("ca.key")]
      .concat(["-out", file("ca.pem"), "-addext", "basicConstraints=critical,CA:TRUE"])
      .concat(["-addext", "keyUsage=critical,keyCertSign"]),
  );
  openssl(["req", ...ec, "-subj", `/CN=${HOST}`, "-keyout", file("leaf.key"), "-out", file("leaf.csr")]);
  writeFileSync(file("leaf.ext"), `subjectAltName=DNS:${HOST}\n`);
  openssl(
    ["x509", "-req", "-in", file("leaf.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key")].concat([
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      file("leaf.ext"),
      "-out",
      file("leaf.pem"),
    ]),
  );
  caFile = file("ca.pem");
  return { key: readFileSync(file("leaf.key")), cert: readFileSync(file("leaf.pem")) };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "castra-proxy-"));
  fixture = buildImageFixture(dir);
  plain = await FixtureServer.start();
  tls = await FixtureServer.start(makeCertificates());
  for (const server of [plain, tls])
    for (const f of [fixture.vhd, fixture.kernel, fixture.initrd])
      server.serve(`/${f.name}`, { file: f.path });
  const hosts = { [HOST]: "127.0.0.1", "other.castra.invalid": "127.0.0.1" };
  proxy = await ForwardProxy.start({ hosts, auth: CREDENTIALS });
  open = await ForwardProxy.start({ hosts });
});
after(async () => {
  for (const server of [plain, tls, proxy, open]) await server.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  for (const server of [plain, tls]) server.requests.length = 0;
  for (const p of [proxy, open]) p.requests.length = 0;
});

const vhd = () => `/${fixture.vhd.name}`;
let projects = 0;

/** `castra images pull` in a new project whose catalog lives at `scheme://host:port` of the matching server. */
async function pull(
  scheme: "http" | "https",
  env: NodeJS.ProcessEnv,
  options: { host?: string; wrapper?: string[] } = {},
): Promise<{ project: string; result: CliResult; log: string }> {
  const server = scheme === "http" ? plain : tls;
  const project = join(dir, `project-${++projects}`);
  const origin = `${scheme}://${options.host ?? HOST}:${server.port}`;
  const catalog = writeJson(`${project}.json`, fixtureCatalog(fixture, origin));
  execFileSync("mkdir", [project]);
  const result = await runCastra(["images", "pull"], {
    cwd: project,
    wrapper: options.wrapper,
    env: {
      CASTRA_CATALOG: catalog,
      CASTRA_CACHE_DIR: "off",
      NODE_EXTRA_CA_CERTS: caFile,
      ...env,
    },
  });
  const log = await readFile(join(project, ".castra", "logs", "image-manager.log"), "utf8").catch(() => "");
  return { project, result, log };
}

function assertExit(result: CliResult, code: number): void {
  assert.equal(
    result.code,
    code,
    `exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
  );
}

/** The proxy's password appears nowhere a user or a log reader could see it. */
function assertNoSecret({ result, log }: { result: CliResult; log: string }): void {
  for (const [where, text] of [
    ["stdout", result.stdout],
    ["stderr", result.stderr],
    ["image-manager.log", log],
  ] as const)
    assert.ok(!text.includes(SECRET), `the proxy password is in ${where}:\n${text}`);
}

const withCredentials = () => proxy.url(CREDENTIALS);
const expectedAuthorization = `Basic ${Buffer.from(`${CREDENTIALS.user}:${CREDENTIALS.password}`).toString("base64")}`;

/** castra in a network namespace of its own: a name it looks up itself fails at once, and never leaves the machine. */
const isolated = ["unshare", "-n"];
const canIsolate = spawnSync("unshare", ["-n", "true"]).status === 0;

test("http: a pull through HTTP_PROXY with Basic credentials reaches a host only the proxy knows", async () => {
  const run = await pull("http", { HTTP_PROXY: withCredentials() });
  assertExit(run.result, 0);
  assertSameDisk(fixture.raw, join(run.project, IMAGE_DIR, "rootfs.qcow2"));
  const gets = proxy.requests.filter((r) => r.method === "GET");
  assert.deepEqual(
    gets.map((r) => r.target),
    [fixture.vhd, fixture.kernel, fixture.initrd].map((f) => `http://${HOST}:${plain.port}/${f.name}`),
  );
  assert.ok(gets.every((r) => r.authorization === expectedAuthorization));
  assert.match(
    run.log,
    new RegExp(`download-start .* proxy=http://ann:\\*\\*\\*@127\\.0\\.0\\.1:${proxy.port}`),
  );
  assertNoSecret(run);
});

test("http: NO_PROXY covering the host sends castra direct, and the unresolvable name is exit 69", async (t) => {
  if (!canIsolate) return t.skip("unshare -n needs root");
  const run = await pull(
    "http",
    { HTTP_PROXY: withCredentials(), NO_PROXY: ".castra.invalid" },
    { wrapper: isolated },
  );
  assertExit(run.result, 69);
  assert.match(run.result.stderr, /Cannot resolve images\.castra\.invalid/);
  assert.equal(proxy.requests.length, 0);
});

test("http: a proxy that drops the connection mid-body is retried, and the download resumes with Range", async () => {
  proxy.dropOnce(1024 * 1024);
  const run = await pull("http", { http_proxy: withCredentials() });
  assertExit(run.result, 0);
  const gets = plain.gets(vhd());
  assert.equal(gets.length, 2);
  assert.match(gets[1]?.range ?? "", /^bytes=\d+-$/);
  assert.equal(gets[1]?.status, 206);
  assertSameDisk(fixture.raw, join(run.project, IMAGE_DIR, "rootfs.qcow2"));
  assertNoSecret(run);
});

test("a refused proxy is exit 69 naming it (password redacted) and the variable that set it", async () => {
  const port = await closedPort();
  const run = await pull("https", { HTTPS_PROXY: `http://ann:${SECRET}@127.0.0.1:${port}` });
  assertExit(run.result, 69);
  assert.match(
    run.result.stderr,
    new RegExp(
      `Proxy http://ann:\\*\\*\\*@127\\.0\\.0\\.1:${port} \\(from HTTPS_PROXY\\) refused the connection`,
    ),
  );
  assert.match(run.result.stderr, /hint: check HTTPS_PROXY/);
  assertNoSecret(run);
});

test("a proxy that asks for credentials (407) is exit 69 with a hint, for GET and for CONNECT", async () => {
  for (const [scheme, variable] of [
    ["http", "HTTP_PROXY"],
    ["https", "HTTPS_PROXY"],
  ] as const) {
    const run = await pull(scheme, { [variable]: proxy.url() });
    assertExit(run.result, 69);
    assert.match(run.result.stderr, new RegExp(`\\(from ${variable}\\) asks for credentials \\(HTTP 407`));
    assert.match(
      run.result.stderr,
      new RegExp(`hint: put the proxy's user name and password in ${variable}`),
    );
  }
});

test("https: a pull through a CONNECT tunnel with credentials; a tunnel cut mid-body resumes", async () => {
  proxy.dropOnce(1024 * 1024);
  const run = await pull("https", { HTTPS_PROXY: withCredentials() });
  assertExit(run.result, 0);
  assertSameDisk(fixture.raw, join(run.project, IMAGE_DIR, "rootfs.qcow2"));
  const connects = proxy.requests.filter((r) => r.method === "CONNECT");
  assert.ok(
    connects.every((r) => r.target === `${HOST}:${tls.port}` && r.authorization === expectedAuthorization),
  );
  const gets = tls.gets(vhd());
  assert.equal(gets.length, 2);
  assert.match(gets[1]?.range ?? "", /^bytes=\d+-$/);
  assertNoSecret(run);
});

test("https: through the tunnel, the certificate is checked against the origin's name", async () => {
  const run = await pull("https", { HTTPS_PROXY: open.url() }, { host: "other.castra.invalid" });
  assertExit(run.result, 69);
  assert.match(run.result.stderr, /TLS connection to other\.castra\.invalid:\d+ failed/);
  assert.equal(tls.gets().length, 0);
});

test("https: NO_PROXY covering the host sends castra direct, and the unresolvable name is exit 69", async (t) => {
  if (!canIsolate) return t.skip("unshare -n needs root");
  const env = { HTTPS_PROXY: open.url(), no_proxy: `${HOST}:${tls.port}` };
  const run = await pull("https", env, { wrapper: isolated });
  assertExit(run.result, 69);
  assert.match(run.result.stderr, /Cannot resolve images\.castra\.invalid/);
  assert.equal(open.requests.length, 0);
});
