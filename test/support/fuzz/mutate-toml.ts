import { bytes, HOSTILE_NUMBERS, HOSTILE_STRINGS, index, pick, type Rand } from "./mutate.js";

/** Damage to castra.toml: bytes, lines, values, keys and table structure. */

export const VALID_TOML = `version = "0.1.0"

[project]
name = "fuzz"

[[vms]]
name = "devbox"
base_image = "images/devbox.qcow2"
overlay = ".castra/devbox-overlay.qcow2"
cpus = 2
memory = "2048 MiB"
ready_pattern = "login:"
metadata = "ec2"
ssh = true
subnet = "169.254.0.0/16"

  [[vms.port_forwards]]
  host = 2222
  guest = 22
  protocol = "tcp"

  [[vms.port_forwards]]
  host = 8053
  guest = 53
  protocol = "udp"
  host_address = "127.0.0.1"

[[vms]]
name = "web"
managed_image = { name = "alpine-minimal", version = "v1", profile = false }
memory = "1G"

  [[vms.port_forwards]]
  host = 8080
  guest = 80

[broker]
port = 7070
`;

const TOML_VALUES = [
  ...HOSTILE_STRINGS.map((s) => JSON.stringify(s)),
  ...HOSTILE_NUMBERS.map(String),
  "true",
  "false",
  "[]",
  '["a", 1]',
  "{}",
  '{ name = "x", version = "y" }',
  "1979-05-27T07:32:00Z",
  "inf",
  "-inf",
  "nan",
  "0x10",
  "0o777",
  "1_000",
  "'''multi\nline'''",
  '"""\nbasic\n"""',
];
const TOML_SNIPPETS = [
  "[",
  "]",
  "[[",
  "]]",
  "=",
  '"',
  "'",
  "{",
  "}",
  ",",
  "#",
  "\\",
  "\n",
  "\r",
  "\t",
  "\u0000",
  ".",
  "[[vms]]\n",
  "[vms]\n",
  "[broker]\n",
  "x = 1\n",
];
const TOML_KEYS = [
  "name",
  "base_image",
  "managed_image",
  "overlay",
  "cpus",
  "memory",
  "host",
  "guest",
  "protocol",
  "host_address",
  "port",
  "vms",
  "ready_pattern",
  "subnet",
  "ssh",
  "ssh_user",
  "metadata",
  "user_data",
  "authorized_keys",
  "profile",
  "version",
  "x",
];

type Lines = string[];
const TOML_MUTATIONS: ((text: string, rand: Rand) => string)[] = [
  // Byte level: a flipped byte, a cut, junk inserted, invalid UTF-8.
  (t, r) => {
    const at = index(t.length, r);
    return t.slice(0, at) + String.fromCharCode(Math.floor(r() * 256)) + t.slice(at + 1);
  },
  (t, r) => t.slice(0, index(t.length, r)),
  (t, r) => {
    const at = index(t.length, r);
    return t.slice(0, at) + bytes(pick(TOML_SNIPPETS, r)) + t.slice(at);
  },
  (t, r) => {
    const at = index(t.length, r);
    return t.slice(0, at) + t.slice(at + 1 + index(40, r));
  },
  (t) => `${bytes("\uFEFF")}${t.replaceAll("\n", "\r\n")}`,
  // Line level: drop, duplicate, swap.
  (t, r) => edit(t, (l) => l.splice(index(l.length, r), 1)),
  (t, r) => edit(t, (l) => l.splice(index(l.length, r), 0, l[index(l.length, r)] ?? "")),
  (t, r) =>
    edit(t, (l) => {
      const [i, j] = [index(l.length, r), index(l.length, r)];
      [l[i], l[j]] = [l[j] ?? "", l[i] ?? ""];
    }),
  // Value level: a key gets a hostile value; a key is renamed, added or doubled.
  (t, r) =>
    edit(t, (l) => {
      const assignments = l.flatMap((line, i) => (/^\s*\w+\s*=/.test(line) ? [i] : []));
      const i = pick(assignments, r);
      l[i] = (l[i] ?? "").replace(/=.*$/, `= ${bytes(pick(TOML_VALUES, r))}`);
    }),
  (t, r) =>
    edit(t, (l) => {
      const assignments = l.flatMap((line, i) => (/^\s*\w+\s*=/.test(line) ? [i] : []));
      const i = pick(assignments, r);
      l[i] = (l[i] ?? "").replace(/^(\s*)\w+/, `$1${pick(TOML_KEYS, r)}`);
    }),
  (t, r) =>
    edit(t, (l) => l.splice(index(l.length, r), 0, `${pick(TOML_KEYS, r)} = ${bytes(pick(TOML_VALUES, r))}`)),
  // Structure: tables made arrays and back, a deep nesting, a huge array.
  (t, r) =>
    r() < 0.5 ? t.replace("[[vms]]", "[vms]") : t.replace("[[vms.port_forwards]]", "[vms.port_forwards]"),
  (t) => `${t}\n[${"a.".repeat(200)}b]\nx = 1\n`,
  (t, r) => `${t}\n${pick(["vms", "broker", "project"], r)} = [${"1,".repeat(5000)}1]\n`,
];

function edit(text: string, change: (lines: Lines) => void): string {
  const lines = text.split("\n");
  change(lines);
  return lines.join("\n");
}

/** A damaged castra.toml (1 to 3 mutations), as bytes: some mutations leave invalid UTF-8. */
export function mutateToml(rand: Rand): Buffer {
  let text = bytes(VALID_TOML);
  const count = 1 + index(3, rand);
  for (let i = 0; i < count; i++) text = pick(TOML_MUTATIONS, rand)(text, rand);
  return Buffer.from(text, "latin1");
}
