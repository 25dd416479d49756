/** "Did you mean" for misspelt keys: the closest known key, or nothing when none is close. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const wanted = normalise(key);
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    // `readyPattern`, `ready-pattern` and `READY_PATTERN` all mean `ready_pattern`.
    if (normalise(name) === wanted) return name;
    const distance = editDistance(key.toLowerCase(), name);
    if (!best || distance < best.distance) best = { name, distance };
  }
  const allowed = Math.min(2, Math.max(1, Math.floor(key.length / 3)));
  if (best && best.distance <= allowed) return best.name;
  // A clipped key (`mem`, `port_fwd`) still points at the key it starts like.
  if (key.length >= 3) return known.find((name) => name.startsWith(key.toLowerCase()));
  return undefined;
}

function normalise(key: string): string {
  return key.toLowerCase().replace(/[-_]/g, "");
}

/** Levenshtein distance where swapping two neighbours (`prot` → `port`) costs one edit. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      let value = Math.min(
        (prev[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (prev[j - 1] as number) + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        value = Math.min(value, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
      row[j] = value;
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}
