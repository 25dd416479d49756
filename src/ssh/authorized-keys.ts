import { open } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, resolve } from "node:path";
import { DataError, fsError, InputMissingError } from "../errors.js";
import { looksLikeKeyLine, looksLikePrivateKey, type PublicKey, parsePublicKeyLine } from "./public-key.js";

/** No public key file is this large; reading stops here so a wrong path cannot fill memory. */
const MAX_KEY_FILE_BYTES = 256 * 1024;
const EXAMPLE = 'authorized_keys = ["~/.ssh/id_ed25519.pub", "ssh-ed25519 AAAAC3Nza… me@laptop"]';

/**
 * The public keys a VM's guest receives: the project key first, then each entry of the VM's `authorized_keys`
 * (a key line, or the path of a file of key lines, relative to `rootDir`), duplicates dropped.
 * Anything that is or holds a private key is refused (exit 65): private keys are never served.
 */
export async function collectAuthorizedKeys(
  projectKey: string,
  entries: readonly string[],
  rootDir: string,
  field = "authorized_keys",
): Promise<string[]> {
  const project = parsePublicKeyLine(projectKey);
  if (!project)
    throw new DataError("The project's SSH public key is not a valid OpenSSH key", { detail: projectKey });
  const keys: PublicKey[] = [project];
  for (const [index, entry] of entries.entries()) {
    keys.push(...(await keysOfEntry(entry, rootDir, `${field}[${index}]`)));
  }
  const seen = new Set<string>();
  return keys.filter((k) => !seen.has(k.blob) && seen.add(k.blob)).map((k) => k.line);
}

async function keysOfEntry(entry: string, rootDir: string, where: string): Promise<PublicKey[]> {
  if (looksLikePrivateKey(entry)) throw privateKeyRefused(where, "the value is a private key");
  if (looksLikeKeyLine(entry)) {
    const key = parsePublicKeyLine(entry);
    if (!key) {
      throw new DataError(`${where} is not a valid OpenSSH public key`, {
        detail: `expected \`type base64 [comment]\`, e.g. the content of ~/.ssh/id_ed25519.pub; got ${preview(entry)}`,
        hint: `copy the whole line from a .pub file, or give its path: ${EXAMPLE}`,
      });
    }
    return [key];
  }
  const path = expandPath(entry.trim(), rootDir);
  const content = await readKeyFile(path, where);
  if (looksLikePrivateKey(content)) throw privateKeyRefused(where, `${path} is a private key`);
  const keys: PublicKey[] = [];
  for (const [index, line] of content.split(/\r?\n/).entries()) {
    if (line.trim() === "" || line.trim().startsWith("#")) continue;
    const key = parsePublicKeyLine(line);
    if (!key) {
      throw new DataError(`${where}: ${path} line ${index + 1} is not an OpenSSH public key`, {
        detail: `got ${preview(line)}`,
        hint: `list the .pub file of a key pair (ssh-keygen writes one next to each private key): ${EXAMPLE}`,
      });
    }
    keys.push(key);
  }
  if (keys.length === 0) {
    throw new DataError(`${where}: ${path} holds no public key`, { hint: `list a .pub file: ${EXAMPLE}` });
  }
  return keys;
}

function expandPath(entry: string, rootDir: string): string {
  if (entry === "~" || entry.startsWith("~/")) return resolve(homedir(), entry.slice(2));
  return isAbsolute(entry) ? entry : resolve(rootDir, entry);
}

async function readKeyFile(path: string, where: string): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new InputMissingError(`${where}: ${path} does not exist`, {
        detail:
          "authorized_keys entries are public key lines or paths of .pub files, relative to castra.toml",
        hint: `create it with \`ssh-keygen -t ed25519\`, or fix the path: ${EXAMPLE}`,
      });
    }
    throw fsError(err, `read ${where}`, path);
  }
  try {
    const buffer = Buffer.alloc(MAX_KEY_FILE_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString("utf8");
  } catch (err) {
    throw fsError(err, `read ${where}`, path);
  } finally {
    await handle.close();
  }
}

function privateKeyRefused(where: string, what: string): DataError {
  return new DataError(`${where} is a private key; castra only hands public keys to guests`, {
    detail: what,
    hint: `list the matching .pub file instead: ${EXAMPLE}`,
  });
}

/** Enough of a bad value to recognise it, never a whole secret. */
function preview(text: string): string {
  const oneLine = text.trim().replace(/\s+/g, " ");
  return JSON.stringify(oneLine.length > 40 ? `${oneLine.slice(0, 40)}…` : oneLine);
}
