import type { ResponderConfig } from "./config.js";
import type { HttpRequest, HttpResponse } from "./http.js";
import { issueToken, parseTokenTtl, verifyToken } from "./token.js";

/** A metadata tree node: a value, or a directory whose listing is its children (sub-directories end in `/`). */
type MetadataNode = string | { children: Record<string, MetadataNode>; listing?: string };

const TOKEN_PATH = "/latest/api/token";
const TOKEN_HEADER = "x-aws-ec2-metadata-token";
const TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds";

/** What a VM's metadata server answers from: its configuration and the user-data it read at start. */
export interface MetadataContent {
  config: ResponderConfig;
  /** The user-data file's bytes as the server found them when it started; absent means 404. */
  userData?: Buffer;
}

/** The subset of EC2's instance metadata API that Alpine's tiny-cloud reads. */
export function answerEc2(content: MetadataContent, request: HttpRequest, nowMs: number): HttpResponse {
  const { config } = content;
  const { method } = request;
  if (method !== "GET" && method !== "HEAD" && method !== "PUT") {
    return text(405, "method not allowed", { Allow: "GET, HEAD, PUT" });
  }
  const path = requestPath(request.target);
  if (path === undefined) return text(400, "malformed request target");

  if (path === TOKEN_PATH) {
    if (method !== "PUT") return text(405, "use PUT to get a token", { Allow: "PUT" });
    // EC2 refuses token requests that went through a proxy, so a forwarded request cannot get one.
    if (request.headers.has("x-forwarded-for")) return text(403, "forwarded requests cannot get a token");
    const ttl = parseTokenTtl(request.headers.get(TTL_HEADER));
    if (ttl === undefined) return text(400, "X-aws-ec2-metadata-token-ttl-seconds must be 1 to 21600");
    return {
      status: 200,
      body: Buffer.from(issueToken(config.secret, ttl, nowMs)),
      headers: { "X-aws-ec2-metadata-token-ttl-seconds": String(ttl) },
    };
  }

  // IMDSv1 (no token) stays open; an empty value is what tiny-cloud sends when its token request failed.
  const token = request.headers.get(TOKEN_HEADER);
  if (token && verifyToken(config.secret, token, nowMs) !== "valid") {
    return text(401, "invalid or expired token");
  }
  if (method === "PUT") return text(405, "metadata is read-only", { Allow: "GET, HEAD" });

  if (path === "/latest/user-data") {
    if (content.userData === undefined) return text(404, "no user-data");
    return { status: 200, body: content.userData, contentType: "application/octet-stream" };
  }
  const node = lookup(rootTree(content), path);
  if (node === undefined) return text(404, "not found");
  return { status: 200, body: Buffer.from(typeof node === "string" ? node : listing(node)) };
}

/**
 * The path of a request target without its query, percent-decoded and without a trailing slash (optional on
 * EC2); undefined when undecodable.
 */
function requestPath(target: string): string | undefined {
  const raw = target.split("?")[0] ?? "";
  try {
    const path = decodeURIComponent(raw);
    return path.length > 1 ? path.replace(/\/$/, "") : path;
  } catch {
    return undefined;
  }
}

function rootTree({ config, userData }: MetadataContent): MetadataNode {
  const mac = config.mac.toLowerCase();
  const metaData: Record<string, MetadataNode> = {
    hostname: config.hostname,
    "instance-id": config.instanceId,
    "local-hostname": config.hostname,
    "local-ipv4": config.localIpv4,
    mac,
    network: dir({
      interfaces: dir({
        macs: dir({ [mac]: dir({ "device-number": "0", "local-ipv4s": config.localIpv4, mac }) }),
      }),
    }),
  };
  // EC2 has no public-keys at all when an instance has no key; a single entry is named after its key pair.
  if (config.publicKeys.length > 0) {
    metaData["public-keys"] = dir({ "0": dir({ "openssh-key": config.publicKeys.join("\n") }) }, "0=castra");
  }
  const latest: Record<string, MetadataNode> = { "meta-data": dir(metaData) };
  if (userData !== undefined) latest["user-data"] = "";
  return dir({ latest: dir(latest) });
}

function dir(children: Record<string, MetadataNode>, listing?: string): MetadataNode {
  return { children, listing };
}

function lookup(root: MetadataNode, path: string): MetadataNode | undefined {
  if (path === "/") return root;
  if (!path.startsWith("/")) return undefined;
  let node: MetadataNode | undefined = root;
  for (const segment of path.slice(1).split("/")) {
    if (typeof node === "string" || node === undefined || !Object.hasOwn(node.children, segment)) {
      return undefined;
    }
    node = node.children[segment];
  }
  return node;
}

function listing(node: Exclude<MetadataNode, string>): string {
  if (node.listing !== undefined) return node.listing;
  return Object.entries(node.children)
    .map(([name, child]) => (typeof child === "string" ? name : `${name}/`))
    .sort()
    .join("\n");
}

export function text(status: number, message: string, headers?: Record<string, string>): HttpResponse {
  return { status, body: Buffer.from(`${message}\n`), headers };
}
