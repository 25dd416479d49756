import { bytes, HOSTILE_NUMBERS, HOSTILE_STRINGS, index, pick, type Rand } from "./mutate.js";

/** Damage to CASTRA_CATALOG documents: mostly to the JSON structure, sometimes to the text. */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const JSON_VALUES: Json[] = [
  ...HOSTILE_STRINGS,
  ...HOSTILE_NUMBERS,
  null,
  true,
  false,
  [],
  {},
  ["root_disk"],
  { type: "rename", output: "../x" },
  { type: "qemu_img_convert", from: "raw", to: "qcow2", output: "a/b" },
  { type: "strip_vhd_footer", extra: 1 },
  { type: "qemu_img_convert", from: "raw; rm -rf /", to: "qcow2", output: "x" },
  "0".repeat(64),
  "F".repeat(64),
  "root_disk",
  "kernel",
  "initrd",
  "strip_vhd_footer",
];

/** Every container (object or array) in the document with the path to it. */
function containers(
  value: Json,
  path: (string | number)[] = [],
): { node: Json[] | { [key: string]: Json }; path: (string | number)[] }[] {
  if (value === null || typeof value !== "object") return [];
  const here = [{ node: value, path }];
  const children = Array.isArray(value)
    ? value.flatMap((v, i) => containers(v, [...path, i]))
    : Object.entries(value).flatMap(([k, v]) => containers(v, [...path, k]));
  return [...here, ...children];
}

const JSON_MUTATIONS: ((doc: Json, rand: Rand) => Json)[] = [
  // Replace a field or element with a hostile value.
  (doc, r) => {
    const found = containers(doc);
    if (found.length === 0) return doc;
    const { node } = pick(found, r);
    const keys: (string | number)[] = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    if (keys.length === 0) return doc;
    const key = pick(keys, r);
    (node as Record<string | number, Json>)[key] = structuredClone(pick(JSON_VALUES, r));
    return doc;
  },
  // Delete a field or element.
  (doc, r) => {
    const found = containers(doc);
    if (found.length === 0) return doc;
    const { node } = pick(found, r);
    if (Array.isArray(node)) node.splice(index(node.length, r), 1);
    else {
      const keys = Object.keys(node);
      if (keys.length > 0) delete node[pick(keys, r)];
    }
    return doc;
  },
  // Add an unknown field, or duplicate an element.
  (doc, r) => {
    const found = containers(doc);
    if (found.length === 0) return doc;
    const { node } = pick(found, r);
    if (Array.isArray(node)) node.push(structuredClone(node[index(node.length, r)] ?? null));
    else
      node[
        pick(
          [
            "extra",
            "url",
            "sha256",
            "size",
            "final_name",
            "kind",
            "id",
            "version",
            "transforms",
            "profile",
            "append",
          ],
          r,
        )
      ] = structuredClone(pick(JSON_VALUES, r));
    return doc;
  },
  // Swap the whole document for something else.
  (_doc, r) =>
    structuredClone(pick<Json>([null, [], {}, "catalog", 42, { images: {} }, { images: [null] }], r)),
];

const JSON_TEXT_MUTATIONS: ((text: string, rand: Rand) => string)[] = [
  (t, r) => t.slice(0, index(t.length, r)),
  (t, r) => {
    const at = index(t.length, r);
    return t.slice(0, at) + String.fromCharCode(Math.floor(r() * 256)) + t.slice(at + 1);
  },
  (t, r) => {
    const at = index(t.length, r);
    return (
      t.slice(0, at) + pick(["{", "}", "[", "]", ",", '"', ":", "\\", "\u0000", "//", "NaN"], r) + t.slice(at)
    );
  },
];

/** A damaged catalog: usually structural damage to the JSON, sometimes damage to the text itself. */
export function mutateCatalog(valid: unknown, rand: Rand): Buffer {
  if (rand() < 0.2) {
    const text = pick(JSON_TEXT_MUTATIONS, rand)(bytes(JSON.stringify(valid, null, 2)), rand);
    return Buffer.from(text, "latin1");
  }
  let doc = structuredClone(valid) as Json;
  const count = 1 + index(3, rand);
  for (let i = 0; i < count; i++) doc = pick(JSON_MUTATIONS, rand)(doc, rand);
  return Buffer.from(JSON.stringify(doc, null, 2) ?? "null", "utf8");
}
