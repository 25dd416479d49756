/** What both fuzzers share: a seeded PRNG (the same seed gives the same files) and values that break things. */

export type Rand = () => number;

/** mulberry32: small, seeded, good enough to spread mutations. */
export function seeded(seed: number): Rand {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const pick = <T>(items: readonly T[], rand: Rand): T => items[Math.floor(rand() * items.length)] as T;
export const index = (length: number, rand: Rand) => Math.floor(rand() * Math.max(1, length));

/** Values that break types, ranges, paths and parsers. */
export const HOSTILE_STRINGS = [
  "",
  " ",
  "../../etc/passwd",
  "/etc/passwd",
  "a/b",
  "..",
  ".",
  "$(touch PWNED)",
  "`touch PWNED`",
  "; touch PWNED",
  "0.0.0.0",
  "::1",
  "127.0.0.1",
  "999.1.1.1",
  "x".repeat(5000),
  "\u0000",
  "\u001b[31mred",
  "é✓🙂",
  "ftp://127.0.0.1/x",
  "file:///etc/passwd",
  "javascript:alert(1)",
  "http://[::1",
  "512 MiB",
  "-1 GiB",
  "99999999 TiB",
  "login:",
];
export const HOSTILE_NUMBERS = [
  0,
  -1,
  1,
  2,
  22,
  65535,
  65536,
  1.5,
  -0,
  1e308,
  2 ** 53 + 1,
  Number.MAX_SAFE_INTEGER,
];

/** The mutations work on latin1 text (one char per byte), so a cut or a flipped byte can leave invalid UTF-8. */
export const bytes = (text: string) => Buffer.from(text, "utf8").toString("latin1");
