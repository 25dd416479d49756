/** Oldest Node castra runs on; package.json's `engines` says the same (a test keeps them equal). */
export const MIN_NODE = "20.19.0";

/**
 * Oldest QEMU castra supports: 6.2, the oldest a maintained LTS distribution ships (Ubuntu 22.04; Debian 12
 * has 7.2, where castra's tests run). Every option castra passes exists there in the spelling castra uses.
 * Older QEMUs are not refused, only warned about.
 */
export const MIN_QEMU = "6.2.0";

/** "7.2.22" from `qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7)` or `v20.20.2`; undefined when absent. */
export function versionIn(text: string): string | undefined {
  return /(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1];
}

/** Whether dotted version `a` is at least `b` (missing parts count as 0). */
export function atLeast(a: string, b: string): boolean {
  const left = a.split(".").map(Number);
  const right = b.split(".").map(Number);
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const diff = (left[i] ?? 0) - (right[i] ?? 0);
    if (diff !== 0) return diff > 0;
  }
  return true;
}

/** "6.2.0" → "6.2" for messages. */
export function shortVersion(version: string): string {
  return version.replace(/\.0$/, "");
}
