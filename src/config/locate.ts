/**
 * Best-effort line numbers for field paths (`vms[1].memory` → 14). smol-toml keeps no positions, so this
 * scans the text for table headers and keys; multi-line strings and odd quoting may fool it, in which case
 * a shorter prefix of the path (or nothing) is found. It only ever decorates an error message.
 */

export type LineLocator = (path: string) => number | undefined;

export function makeLineLocator(text: string): LineLocator {
  const lines = new Map<string, number>();
  const arrayCounts = new Map<string, number>();
  let table = "";

  const remember = (path: string, line: number) => {
    if (!lines.has(path)) lines.set(path, line);
  };

  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const text = stripComment(raw).trim();
    const arrayHeader = /^\[\[\s*([^\]]+?)\s*\]\]$/.exec(text);
    const tableHeader = arrayHeader ? null : /^\[\s*([^\]]+?)\s*\]$/.exec(text);
    if (arrayHeader?.[1]) {
      const base = indexedPath(splitKey(arrayHeader[1]), arrayCounts, true);
      table = base;
      remember(base, line);
      return;
    }
    if (tableHeader?.[1]) {
      table = indexedPath(splitKey(tableHeader[1]), arrayCounts, false);
      remember(table, line);
      return;
    }
    const assignment =
      /^((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=(.*)$/.exec(
        text,
      );
    if (!assignment?.[1]) return;
    const keyPath = join(table, splitKey(assignment[1]).join("."));
    remember(keyPath, line);
    // Keys of an inline table on the same line: `managed_image = { name = "x", version = "v1" }`.
    const inline = assignment[2]?.trim() ?? "";
    if (inline.startsWith("{")) {
      for (const m of inline.matchAll(/[{,]\s*([A-Za-z0-9_-]+)\s*=/g)) remember(`${keyPath}.${m[1]}`, line);
    }
  });

  return (path) => {
    // Walk back from the full path to the closest prefix that was found in the text.
    let candidate = path;
    while (candidate) {
      const found = lines.get(candidate);
      if (found !== undefined) return found;
      const cut = Math.max(candidate.lastIndexOf("."), candidate.lastIndexOf("["));
      candidate = cut > 0 ? candidate.slice(0, cut) : "";
    }
    return undefined;
  };
}

/** Turns header segments into the indexed path (`vms.port_forwards` → `vms[2].port_forwards[0]`). */
function indexedPath(segments: string[], counts: Map<string, number>, isArray: boolean): string {
  let path = "";
  segments.forEach((segment, i) => {
    path = join(path, segment);
    const last = i === segments.length - 1;
    if (last && isArray) {
      const next = (counts.get(path) ?? -1) + 1;
      counts.set(path, next);
      path = `${path}[${next}]`;
    } else if (counts.has(path)) {
      path = `${path}[${counts.get(path)}]`;
    }
  });
  return path;
}

function splitKey(key: string): string[] {
  const parts: string[] = [];
  for (const m of key.matchAll(/"([^"]*)"|'([^']*)'|([^.\s]+)/g)) parts.push(m[1] ?? m[2] ?? m[3] ?? "");
  return parts;
}

function stripComment(line: string): string {
  // A `#` outside quotes starts a comment; good enough for locating keys.
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === "\\" && quote === '"') i++;
      else if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === "#") return line.slice(0, i);
  }
  return line;
}

function join(prefix: string, key: string): string {
  return prefix ? `${prefix}.${key}` : key;
}
