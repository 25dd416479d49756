import { readFile } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import { DataError, fsError, InputMissingError } from "../errors.js";
import { type DiscoveryOptions, findConfigFile, findProject } from "./discover.js";
import { type FieldIssue, FieldReader } from "./fields.js";
import { makeLineLocator } from "./locate.js";
import { DEFAULT_MANAGED_IMAGE, DEFAULT_VM_NAME, type Project } from "./model.js";
import { defaultMounts } from "./mounts.js";
import { CONFIG_VERSION, validateConfig } from "./schema.js";

export type LoadOptions = DiscoveryOptions;

/** The project for `cwd`: its castra.toml, or the synthesized default project when there is none. */
export async function loadOrDefaultProject(options: LoadOptions): Promise<Project> {
  const found = await findProject(options);
  return found.kind === "config"
    ? loadProjectFile(found.path, options.cwd)
    : synthesizeProject(found.rootDir);
}

/** Like loadOrDefaultProject, for commands that need a real castra.toml. */
export async function loadProject(options: LoadOptions): Promise<Project> {
  const file = await findConfigFile(options);
  if (file) return loadProjectFile(file, options.cwd);
  throw new InputMissingError("No castra.toml found", {
    detail: `Looked in ${resolve(options.cwd)}${options.skipDiscovery ? "" : " and its parent directories"}.`,
    hint: "create one with `castra init`",
  });
}

export async function loadProjectFile(configPath: string, cwd = process.cwd()): Promise<Project> {
  const file = resolve(cwd, configPath);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw fsError(err, "read the config file", file);
  }
  return parseProject(text, file, cwd);
}

/** Parses and validates castra.toml text; `configPath` must be absolute (relative paths hang off it). */
export function parseProject(text: string, configPath: string, cwd = dirname(configPath)): Project {
  const shown = displayPath(configPath, cwd);
  let raw: Record<string, unknown>;
  try {
    raw = parse(text);
  } catch (err) {
    throw syntaxError(err, shown);
  }
  const rootDir = dirname(configPath);
  const reader = new FieldReader();
  const config = validateConfig(raw, rootDir, reader);
  if (reader.issues.length > 0) throw validationError(reader.issues, text, shown);
  return { ...config, rootDir, configPath, synthesized: false, stateDir: join(rootDir, ".castra") };
}

/** The zero-config project (docs/design.md, "Configuration"): held in memory only, nothing is written. */
export function synthesizeProject(cwd: string): Project {
  const rootDir = resolve(cwd);
  return {
    name: basename(rootDir) || "castra",
    rootDir,
    configPath: null,
    synthesized: true,
    stateDir: join(rootDir, ".castra"),
    version: CONFIG_VERSION,
    vms: [
      {
        name: DEFAULT_VM_NAME,
        source: { kind: "managed", ...DEFAULT_MANAGED_IMAGE, useProfile: true },
        overlay: join(rootDir, ".castra", `${DEFAULT_VM_NAME}-overlay.qcow2`),
        portForwards: [],
        mounts: defaultMounts(rootDir),
        provision: [],
      },
    ],
    warnings: [],
  };
}

function syntaxError(err: unknown, shown: string): DataError {
  if (err instanceof TomlError) {
    const reason = err.message.split("\n")[0]?.replace(/^Invalid TOML document: /, "") ?? "invalid TOML";
    return new DataError(`${shown}:${err.line}:${err.column}: ${reason}`, {
      detail: `${shown} is not valid TOML (line ${err.line}, column ${err.column}):\n${printable(err.codeblock.trimEnd())}`,
      hint: `fix line ${err.line} of ${shown}; \`castra init -o /tmp/castra.toml\` writes a valid example to compare`,
      cause: err,
    });
  }
  return new DataError(`${shown}: cannot be read as TOML`, {
    detail: err instanceof Error ? err.message : String(err),
    hint: `check ${shown} for stray binary bytes`,
    cause: err,
  });
}

function validationError(issues: FieldIssue[], text: string, shown: string): DataError {
  const locate = makeLineLocator(text);
  const sourceLines = text.split(/\r?\n/);
  const [first] = issues;
  if (issues.length === 1 && first) {
    // One problem: show the offending line as written, then a line that would be right.
    const line = locate(first.path);
    const source =
      line === undefined ? [] : [`${shown}:${line}: ${printable(sourceLines[line - 1]?.trim() ?? "")}`];
    return new DataError(`${shown}: ${first.path} ${first.message}`, {
      detail: [...source, ...(first.example ? exampleLines(first.example, "") : [])].join("\n"),
      hint: `fix ${first.path} in ${shown}, then check it with \`castra ports\``,
    });
  }
  const describeIssue = (issue: FieldIssue) => {
    const line = locate(issue.path);
    return [
      `${line === undefined ? shown : `${shown}:${line}`}: ${issue.path} ${issue.message}`,
      ...(issue.example ? exampleLines(issue.example, "  ") : []),
    ];
  };
  return new DataError(`${shown} has ${issues.length} invalid fields`, {
    detail: issues.flatMap(describeIssue).join("\n"),
    hint: `fix them in ${shown}, then check it with \`castra ports\``,
  });
}

/** Control characters from a damaged file would garble the terminal: show them as U+FFFD. */
function printable(text: string): string {
  return text.replace(/\p{Cc}/gu, (c) => (c === "\n" || c === "\t" ? c : "\uFFFD"));
}

function exampleLines(example: string, indent: string): string[] {
  const [head = "", ...rest] = example.split("\n");
  return [`${indent}example: ${head}`, ...rest.map((line) => `${indent}         ${line}`)];
}

/** The config path as the user would type it: relative to the cwd when inside it. */
export function displayPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}
