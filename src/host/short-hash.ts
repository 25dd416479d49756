/**
 * 64-bit FNV-1a of `text` as 16 hex digits: a short, stable name for a longer one (not a security measure),
 * computed without loading `node:crypto`, which costs every command that needs none of it its start-up time.
 */
export function shortHash(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, "0");
}
