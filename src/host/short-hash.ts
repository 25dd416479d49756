/**
 * 64-bit FNV-1a of `text` as 16 hex digits: a short, stable name for a longer one (not a security measure),
 * computed without loading `node:crypto`, which costs every command that needs none of it its start-up time.
 * The 64-bit state is two 32-bit halves: BigInt arithmetic allocates at every step.
 */
export function shortHash(text: string): string {
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (const byte of new TextEncoder().encode(text)) {
    lo ^= byte;
    // × 0x100000001b3 (2^40 + 0x1b3) mod 2^64; every product stays below 2^53, so it is exact.
    const low = (lo >>> 0) * 0x1b3;
    hi = (hi * 0x1b3 + Math.floor(low / 0x100000000) + (lo << 8)) >>> 0;
    lo = low >>> 0;
  }
  return (hi >>> 0).toString(16).padStart(8, "0") + (lo >>> 0).toString(16).padStart(8, "0");
}
