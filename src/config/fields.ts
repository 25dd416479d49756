import { TomlDate } from "smol-toml";
import type { ConfigWarning } from "./model.js";
import { closestKey } from "./suggest.js";

/** One thing wrong with a field, with a value that would have been right. */
export interface FieldIssue {
  path: string;
  message: string;
  /** A valid line of TOML for this field, e.g. `memory = "2048 MiB"`. */
  example?: string;
}

type Table = Record<string, unknown>;

/**
 * Reads fields out of parsed TOML, collecting every problem instead of stopping at the first, so one
 * run of castra shows the user all of them.
 */
export class FieldReader {
  readonly issues: FieldIssue[] = [];
  readonly warnings: ConfigWarning[] = [];

  fail(path: string, message: string, example?: string): undefined {
    this.issues.push({ path, message, example });
    return undefined;
  }

  warn(path: string, message: string, kind: ConfigWarning["kind"] = "notice"): void {
    this.warnings.push({ path, message, kind });
  }

  /** Unknown keys are warnings, never errors: a newer castra.toml still works with an older castra. */
  unknownKeys(table: Table, path: string, known: readonly string[]): void {
    for (const key of Object.keys(table)) {
      if (known.includes(key)) continue;
      const suggestion = closestKey(key, known);
      this.warn(
        joinPath(path, key),
        suggestion ? `unknown key (did you mean \`${suggestion}\`?)` : "unknown key",
        "unknown_key",
      );
    }
  }

  /**
   * The entries of an array of tables (`[[vms.mounts]]`), each with its path (`vms[0].mounts[1]`) and its unknown
   * keys warned about; an entry that is not a table, or a value that is no list, is an issue.
   */
  tableList(
    value: unknown,
    path: string,
    known: readonly string[],
    example: string,
  ): { table: Table; at: string }[] {
    const name = `[[${path.replace(/\[\d+\]/g, "")}]]`;
    if (!Array.isArray(value))
      return this.fail(path, `must be a list of ${name} tables, not ${describe(value)}`, example) ?? [];
    return value.flatMap((entry, index) => {
      const at = `${path}[${index}]`;
      const table = this.table(entry, at, example);
      if (!table) return [];
      this.unknownKeys(table, at, known);
      return [{ table, at }];
    });
  }

  table(value: unknown, path: string, example: string): Table | undefined {
    if (isTable(value)) return value;
    return this.fail(path, `must be a table, not ${describe(value)}`, example);
  }

  string(table: Table, key: string, path: string, example: string, required = false): string | undefined {
    const value = table[key];
    const at = joinPath(path, key);
    if (value === undefined) return required ? this.fail(at, "is missing", example) : undefined;
    if (typeof value !== "string") return this.fail(at, `must be a string, not ${describe(value)}`, example);
    if (value.trim() === "") return this.fail(at, "must not be empty", example);
    return value;
  }

  /** One of a few words (`metadata = "ec2"`); anything else is an issue naming them. */
  choice<T extends string>(
    table: Table,
    key: string,
    path: string,
    choices: readonly T[],
    example: string,
  ): T | undefined {
    const text = this.string(table, key, path, example);
    if (text === undefined || (choices as readonly string[]).includes(text)) return text as T | undefined;
    const words = choices.map((c) => JSON.stringify(c));
    const list = `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
    return this.fail(joinPath(path, key), `must be ${list}, not ${JSON.stringify(text)}`, example);
  }

  /** A file path: a string without control characters (they break logs and QEMU's argument syntax). */
  path(table: Table, key: string, path: string, example: string): string | undefined {
    const value = this.string(table, key, path, example);
    if (value === undefined || !/\p{Cc}/u.test(value)) return value;
    return this.fail(joinPath(path, key), "must not contain control characters such as newlines", example);
  }

  integer(
    table: Table,
    key: string,
    path: string,
    range: { min: number; max: number; example: string; required?: boolean },
  ): number | undefined {
    const value = table[key];
    const at = joinPath(path, key);
    if (value === undefined) return range.required ? this.fail(at, "is missing", range.example) : undefined;
    if (typeof value !== "number" || !Number.isInteger(value)) {
      return this.fail(at, `must be a whole number, not ${describe(value)}`, range.example);
    }
    if (value < range.min || value > range.max) {
      return this.fail(at, `must be between ${range.min} and ${range.max}, not ${value}`, range.example);
    }
    return value;
  }

  boolean(table: Table, key: string, path: string, example: string): boolean | undefined {
    const value = table[key];
    if (value === undefined || typeof value === "boolean") return value;
    return this.fail(joinPath(path, key), `must be true or false, not ${describe(value)}`, example);
  }
}

export function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof TomlDate);
}

export function joinPath(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** How a TOML value reads in a message: `the string "2"`, `the number 2.5`, `a table`. */
export function describe(value: unknown): string {
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  if (typeof value === "number") return `the number ${value}`;
  if (typeof value === "boolean") return `the boolean ${value}`;
  if (value instanceof TomlDate) return `the date ${value.toISOString()}`;
  if (Array.isArray(value)) return "an array";
  if (isTable(value)) return "a table";
  return String(value);
}
