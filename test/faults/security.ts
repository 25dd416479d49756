import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../support/processes.js";
import { byoProject, guestCatalog, serveGuestImage, testGuest, writeJson } from "./fixtures.js";
import {
  type CaseContext,
  errorLine,
  exitOf,
  hasStackTrace,
  listTree,
  type Scenario,
  until,
} from "./harness.js";
import { qemuPidsOf } from "./proc.js";

type Catalog = Awaited<ReturnType<typeof guestCatalog>>;
type Entry = Catalog["images"][number];

/** One hostile catalog: a change to a valid one, and the exit code its refusal must have. */
interface Hostile {
  label: string;
  change: (catalog: Catalog, origin: string) => void;
  env?: (origin: string) => NodeJS.ProcessEnv;
  code?: number;
}

const first = (c: Catalog) => c.images[0] as Entry;
/** A copy of the valid entry under another id or version, so only the validation of names can refuse it. */
const extra = (c: Catalog, fields: Partial<Entry>) =>
  c.images.push({ ...structuredClone(first(c)), ...fields });
const setUrl = (url: (origin: string) => string) => (c: Catalog, origin: string) => {
  (first(c).artifacts[0] as { url: string }).url = url(origin);
};
const setName = (artifact: number, name: string) => (c: Catalog) => {
  (first(c).artifacts[artifact] as { final_name: string }).final_name = name;
};

const NAMES: Hostile[] = [
  { label: "id ../../evil", change: (c) => extra(c, { id: "../../evil" }) },
  { label: "id evil/x", change: (c) => extra(c, { id: "evil/x" }) },
  { label: "id a..b", change: (c) => extra(c, { id: "a..b" }) },
  { label: "version ../v1", change: (c) => extra(c, { version: "../v1" }) },
  { label: "version v1/..", change: (c) => extra(c, { version: "v1/.." }) },
  { label: "version ..", change: (c) => extra(c, { version: ".." }) },
  { label: "final_name ../../outside", change: setName(1, "../../outside") },
  { label: "final_name sub/vmlinuz", change: setName(1, "sub/vmlinuz") },
  { label: "final_name ..", change: setName(2, "..") },
  {
    label: "convert output ../rootfs.qcow2",
    change: (c) => {
      const root = first(c).artifacts[0] as { final_name: string; transforms: { output?: string }[] };
      root.final_name = "../rootfs.qcow2";
      (root.transforms[1] as { output: string }).output = "../rootfs.qcow2";
    },
  },
  {
    label: "rename output /etc/passwd",
    change: (c) => {
      const initrd = first(c).artifacts[2] as { final_name: string; transforms: unknown[] };
      initrd.final_name = "/etc/passwd";
      initrd.transforms = [{ type: "rename", output: "/etc/passwd" }];
    },
  },
];

const SCHEMES: Hostile[] = [
  { label: "ftp://", change: setUrl((o) => `${o.replace("http:", "ftp:")}/rootfs.vhd`) },
  { label: "gopher://", change: setUrl((o) => `${o.replace("http:", "gopher:")}/rootfs.vhd`) },
  { label: "data:", change: setUrl(() => "data:application/octet-stream;base64,AAAA") },
  { label: "javascript:", change: setUrl(() => "javascript:fetch('http://127.0.0.1/')") },
  { label: "scheme-relative //host", change: setUrl((o) => `${o.replace("http:", "")}/rootfs.vhd`) },
  {
    label: "CASTRA_MIRROR=ftp://",
    change: () => {},
    env: (o) => ({ CASTRA_MIRROR: o.replace("http:", "ftp:") }),
    code: 64,
  },
];

/** Each hostile catalog through `castra up` and `castra images pull`: refused, no request, nothing created. */
function refusals(name: string, caseName: string, hostile: Hostile[]): Scenario {
  return {
    name,
    timeoutMs: 90_000,
    async run(ctx) {
      const server = await ctx.server();
      await serveGuestImage(server);
      const failures: string[] = [];
      for (const [i, h] of hostile.entries()) {
        // A fresh project and request log per catalog: one that gets through must not taint the next.
        const project = await ctx.dir(`project-${i}`);
        server.requests.length = 0;
        const catalog = await guestCatalog(server.origin);
        h.change(catalog, server.origin);
        const file = await writeJson(join(ctx.root, `catalog-${i}.json`), catalog);
        const rootBefore = await listTree(ctx.root);
        for (const command of [["up"], ["images", "pull"]]) {
          const env = { CASTRA_CATALOG: file, ...h.env?.(server.origin) };
          const result = await ctx.castra(command, { cwd: project, env, timeoutMs: 60_000 });
          // `up` may set up .castra/run and .castra/logs before it reads the catalog; nothing else may appear.
          const created = (await listTree(ctx.root)).filter(
            (p) => !rootBefore.includes(p) && !/^project-\d+\/\.castra(\/(run|logs)(\/.*)?)?$/.test(p),
          );
          const expected = h.code ?? 65;
          if (
            result.code !== expected ||
            server.requests.length > 0 ||
            created.length > 0 ||
            hasStackTrace(result.stderr)
          ) {
            failures.push(
              `${h.label} (${command.join(" ")}): ${exitOf(result)}, ${server.requests.length} requests, created [${created.join(" ")}] ${errorLine(result)}`,
            );
          }
          if ((await qemuPidsOf(`project-${i}`)).length > 0)
            await ctx.castra(["down", "--timeout", "2"], { cwd: project, env });
        }
      }
      ctx.check(
        caseName,
        "refused by `up` and `images pull` with exit 65 (bad mirror: 64), before any request, nothing created",
        failures.length === 0
          ? `${hostile.length} catalogs × 2 commands refused, 0 requests, nothing created: ${hostile.map((h) => h.label).join(", ")}`
          : failures.join("; "),
        failures.length === 0,
      );
    },
  };
}

/** Strings a shell would run: `$(...)`, backticks and `;`. No file named PWNED may ever appear. */
const EVIL = "$(touch PWNED);`touch PWNED`; touch PWNED";

async function pwnedFiles(root: string): Promise<string[]> {
  const inTree = (await listTree(root))
    .filter((p) => p.split("/").pop() === "PWNED")
    .map((p) => join(root, p));
  const elsewhere = ["/", process.cwd(), tmpdir(), homedir(), `/tmp/castra-${process.getuid?.()}`]
    .map((d) => join(d, "PWNED"))
    .filter((p) => existsSync(p));
  return [...inTree, ...elsewhere];
}

/**
 * Config and catalog values full of shell syntax, through every command that spawns something: the
 * project directory, name, base image, overlay, ready pattern and user-data path in castra.toml; the
 * kernel's URL, file name and the kernel command line in the catalog (the guest asks for metadata, so
 * QEMU runs castra's metadata connector too).
 */
const injection: Scenario = {
  name: "shell injection",
  timeoutMs: 180_000,
  async run(ctx: CaseContext) {
    const before = await pwnedFiles(ctx.root);
    const dir = await ctx.dir(`project ${EVIL} 'quoted'`);
    const server = await ctx.server();
    await serveGuestImage(server);
    const g = await testGuest();
    const catalog = await guestCatalog(server.origin);
    const kernel = first(catalog).artifacts[1] as { url: string; final_name: string };
    kernel.url = `${server.origin}/vmlinuz-${EVIL}`;
    server.serve(new URL(kernel.url).pathname, { file: g.kernel });
    kernel.final_name = `vmlinuz ${EVIL}`;
    const profile = first(catalog).profile as Record<string, unknown>;
    profile.append = `console=ttyS0 quiet castra.disk=1 castra.metadata=1 evil=${EVIL}`;
    profile.metadata = "ec2";
    const catalogFile = await writeJson(join(ctx.root, "catalog.json"), catalog);
    const name = `inj ${EVIL} ${process.pid}`;
    await byoProject(dir, {
      name,
      baseImage: `base ${EVIL}.qcow2`,
      readyPattern: EVIL,
      vmExtra: [
        `overlay = ${JSON.stringify(`.castra/overlay ${EVIL}.qcow2`)}`,
        `metadata = "ec2"`,
        `user_data = ${JSON.stringify(`user-data ${EVIL}.txt`)}`,
        `[[vms.port_forwards]]\nhost = ${await freePort()}\nguest = 22`,
      ].join("\n"),
      tail: [
        `[[vms]]\nname = "managed"\nmanaged_image = { name = "alpine-minimal", version = "v1" }`,
        `[broker]\nport = ${await freePort()}`,
      ].join("\n\n"),
    });
    await writeFile(join(dir, `user-data ${EVIL}.txt`), "#!/bin/sh\necho hello\n");
    const env = { CASTRA_CATALOG: catalogFile };
    const castra = (args: string[]) => ctx.castra(args, { cwd: dir, env, timeoutMs: 120_000 });
    const results = [await castra(["images", "pull"]), await castra(["up", "--no-wait"])];
    const serial = join(dir, ".castra", "logs", "managed-serial.log");
    const asked = await until(
      async () => /metadata done/.test(await readFile(serial, "utf8").catch(() => "")),
      90_000,
    );
    for (const args of [["status"], ["ports"], ["logs", "--tail", "5"], ["down", "--timeout", "5"]])
      results.push(await castra(args));
    const found = (await pwnedFiles(ctx.root)).filter((p) => !before.includes(p));
    const codes = results.map((r) => r.code);
    ctx.check(
      "shell syntax in config and catalog values (paths, names, pattern, URL, append)",
      "pull, up, status, ports, logs, down work; no file named PWNED anywhere",
      `exits ${codes.join(",")}, guest ${asked ? "queried" : "DID NOT query"} metadata, PWNED: ${found.length === 0 ? "none" : found.join(" ")}`,
      found.length === 0 && asked && codes.every((c) => c === 0) && (await qemuPidsOf(name)).length === 0,
    );
  },
};

export const securityScenarios: Scenario[] = [
  refusals("catalog names", "catalog override names with `/` or `..`", NAMES),
  refusals("catalog schemes", "catalog URL or mirror scheme other than http, https, file", SCHEMES),
  injection,
];
