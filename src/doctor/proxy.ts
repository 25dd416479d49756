import { redactUrlCredentials } from "../host/redact.js";
import { type DoctorCheck, ok, warn } from "./check.js";

/** The proxy variables downloads read, in the order the usual precedence checks them. */
const PROXY_VARIABLES = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"];

/** What castra's downloads would see: each proxy variable set, passwords redacted. */
export function checkProxies(env: NodeJS.ProcessEnv): DoctorCheck {
  const set = PROXY_VARIABLES.filter((name) => env[name]?.trim());
  if (set.length === 0) return ok("proxy", "no proxy variables set: downloads connect directly");
  const shown = set.map((name) => `${name}=${redactUrlCredentials(env[name]?.trim() ?? "")}`);
  const bad = set.filter((name) => !name.toLowerCase().startsWith("no_") && !isUrl(env[name]?.trim() ?? ""));
  if (bad.length === 0) return ok("proxy", shown.join(", "));
  return warn(
    "proxy",
    `${shown.join(", ")}: ${bad.join(", ")} ${bad.length > 1 ? "are not URLs" : "is not a URL"}`,
    `write it as a URL, e.g. ${bad[0]}=http://proxy.example:3128`,
  );
}

function isUrl(text: string): boolean {
  try {
    return ["http:", "https:"].includes(new URL(text).protocol);
  } catch {
    return false;
  }
}
