/** ssh's command-line forwards and their ssh_config keywords (`man ssh_config`). */
const FORWARDS: Record<string, string> = { L: "LocalForward", R: "RemoteForward", D: "DynamicForward" };

/**
 * The ssh_config spelling of an ssh option at the start of `words`, for the hint that says how to pass it:
 * `-L 8080:localhost:80` → `LocalForward 8080 localhost:80`. Undefined for options it does not know.
 */
export function sshOptionForm(words: readonly string[]): string | undefined {
  const [first = "", next] = words;
  if (first === "-A") return "ForwardAgent yes";
  const letter = /^-([LRD])/.exec(first)?.[1];
  if (!letter) return undefined;
  const spec = first.length > 2 ? first.slice(2) : next;
  if (!spec) return undefined;
  const keyword = FORWARDS[letter] as string;
  if (letter === "D") return `${keyword} ${spec}`;
  // [bind_address:]port:host:hostport → "[bind_address:]port host:hostport"
  const parts = spec.split(":");
  if (parts.length < 3) return undefined;
  return `${keyword} ${parts.slice(0, -2).join(":")} ${parts.slice(-2).join(":")}`;
}
