import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { DataError, fsError } from "../errors.js";
import { type CatalogEntry, catalogFile } from "./catalog-schema.js";

/** `images[0].artifacts[1].sha256` */
export function jsonPath(path: readonly PropertyKey[]): string {
  return path
    .map((part, i) => (typeof part === "number" ? `[${part}]` : i === 0 ? String(part) : `.${String(part)}`))
    .join("");
}

/** Reads and strictly validates a CASTRA_CATALOG file; every problem names the file and its JSON path. */
export async function readCatalogOverride(file: string): Promise<CatalogEntry[]> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw fsError(err, "read the catalog file given as CASTRA_CATALOG", path);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DataError(`${path}: not valid JSON`, {
      detail: (err as Error).message,
      hint: 'a catalog file is JSON: { "images": [ { "id": ..., "version": ..., "artifacts": [...] } ] }',
    });
  }
  return parseCatalogOverride(raw, path);
}

export function parseCatalogOverride(raw: unknown, path: string): CatalogEntry[] {
  const result = catalogFile.safeParse(raw);
  if (result.success) return result.data.images;
  const issues = result.error.issues.map((issue) => {
    const where = jsonPath(issue.path) || "(top level)";
    return `${where}: ${issue.message}`;
  });
  const [first = ""] = issues;
  throw new DataError(`${path}: ${first}`, {
    detail: issues.length > 1 ? `${issues.length} problems:\n${issues.join("\n")}` : undefined,
    hint: `fix ${path} (CASTRA_CATALOG); every artifact needs url, sha256, size and a plain final_name`,
  });
}
