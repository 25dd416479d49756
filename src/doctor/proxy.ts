import { CastraError } from "../errors.js";
import { parseProxy } from "../images/proxy-env.js";
import { type DoctorCheck, fail, ok } from "./check.js";

/** The variables downloads read (README, "Proxies"); for each scheme the lower-case form wins. */
const PROXY_VARIABLES = ["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"];
const NO_PROXY_VARIABLES = ["no_proxy", "NO_PROXY"];

/**
 * What castra's downloads would see: each proxy variable set, shown as castra shows it (passwords `***`);
 * one castra would refuse (not an http:// URL) fails every download, so it is a problem.
 */
export function checkProxies(env: NodeJS.ProcessEnv): DoctorCheck {
  const shown: string[] = [];
  const refused: CastraError[] = [];
  for (const name of PROXY_VARIABLES) {
    const value = env[name]?.trim();
    if (!value) continue;
    try {
      shown.push(`${name}=${parseProxy(name, value).shown}`);
    } catch (err) {
      if (!(err instanceof CastraError)) throw err;
      refused.push(err);
      shown.push(err.detail ?? name);
    }
  }
  for (const name of NO_PROXY_VARIABLES) if (env[name]?.trim()) shown.push(`${name}=${env[name]?.trim()}`);
  if (shown.length === 0) return ok("proxy", "no proxy variables set: downloads connect directly");
  const [first] = refused;
  if (!first) return ok("proxy", shown.join(", "));
  return fail("proxy", `${shown.join(", ")}: ${first.headline}`, first.hint ?? "unset it");
}
