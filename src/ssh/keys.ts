import { execFile } from "node:child_process";
import { chmod, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { CannotCreateError, CastraError, DataError, fsError } from "../errors.js";
import { ensurePrivateDir, refuseLink, refuseLinksIn } from "../host/private-files.js";
import { sshToolMissingError } from "./client.js";
import { parsePublicKeyLine } from "./public-key.js";

const run = promisify(execFile);

/** The project's key pair, which `castra ssh` logs in with and the metadata service hands to guests. */
export interface ProjectKey {
  privateKeyPath: string;
  publicKeyPath: string;
  /** The `.pub` line: `ssh-ed25519 AAAA… castra@<project>`. */
  publicKey: string;
}

export function sshDir(stateDir: string): string {
  return join(stateDir, "ssh");
}

/**
 * Creates `.castra/ssh/id_ed25519` (0600) and its `.pub` when missing, in a directory only the owner can
 * enter; an existing pair is kept. Resolves to the pair with its public key.
 */
export async function ensureProjectKey(stateDir: string, projectName: string): Promise<ProjectKey> {
  const dir = sshDir(stateDir);
  const key: Omit<ProjectKey, "publicKey"> = {
    privateKeyPath: join(dir, "id_ed25519"),
    publicKeyPath: join(dir, "id_ed25519.pub"),
  };
  await ensurePrivateDir(stateDir, dir);
  await refuseSshLinks(stateDir);

  if (!(await exists(key.privateKeyPath))) {
    await generate(dir, key, projectName);
  } else {
    // ssh refuses a private key that others can read, e.g. after a copy that lost the mode.
    await chmod(key.privateKeyPath, 0o600).catch((err) => {
      throw fsError(err, "restrict the project's SSH key", key.privateKeyPath);
    });
    if (!(await exists(key.publicKeyPath))) await derivePublicKey(key);
  }
  const publicKey = (
    await readFile(key.publicKeyPath, "utf8").catch((err) => {
      throw fsError(err, "read the project's SSH public key", key.publicKeyPath);
    })
  ).trim();
  if (!parsePublicKeyLine(publicKey)) {
    throw new DataError("The project's SSH public key is unreadable", {
      detail: `${key.publicKeyPath} does not hold an OpenSSH public key`,
      hint: `remove ${key.privateKeyPath} and ${key.publicKeyPath}, then run \`castra up\` to create a new pair`,
    });
  }
  return { ...key, publicKey };
}

/** Generates into a private temporary directory, then renames into place, so a crash leaves no half pair. */
async function generate(dir: string, key: Omit<ProjectKey, "publicKey">, projectName: string): Promise<void> {
  const tmp = await mkdtemp(join(dir, ".keygen-")).catch((err) => {
    throw fsError(err, "create the project's SSH key", dir);
  });
  try {
    const tmpKey = join(tmp, "id_ed25519");
    const comment = `castra@${projectName.replace(/\s+/g, "-")}`;
    await sshKeygen(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", tmpKey]);
    await chmod(tmpKey, 0o600);
    // The public half lands first: a private key without it is repaired, the reverse would be unusable.
    await rename(`${tmpKey}.pub`, key.publicKeyPath);
    await rename(tmpKey, key.privateKeyPath);
  } catch (err) {
    throw err instanceof CastraError ? err : fsError(err, "create the project's SSH key", key.privateKeyPath);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * A link in `.castra/ssh/` (the key pair, known_hosts) is refused, never followed: castra would chmod or read
 * its target, and ssh would append to it. A missing directory holds none.
 */
export async function refuseSshLinks(stateDir: string): Promise<void> {
  const dir = sshDir(stateDir);
  await refuseLink(dir);
  await refuseLinksIn(dir);
}

async function derivePublicKey(key: Omit<ProjectKey, "publicKey">): Promise<void> {
  const { stdout } = await sshKeygen(["-y", "-f", key.privateKeyPath]);
  await writeFile(key.publicKeyPath, stdout, { mode: 0o600, flag: "wx" }).catch((err) => {
    throw fsError(err, "write the project's SSH public key", key.publicKeyPath);
  });
}

async function sshKeygen(args: string[]): Promise<{ stdout: string }> {
  try {
    return await run("ssh-keygen", args, { timeout: 30_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") {
      throw sshToolMissingError("ssh-keygen", "castra creates the project's SSH key with ssh-keygen", err);
    }
    throw new CannotCreateError("ssh-keygen could not create the project's SSH key", {
      detail: `ssh-keygen ${args.join(" ")}: ${(e.stderr || e.message).trim()}`,
      hint: "check that `ssh-keygen -t ed25519 -f /tmp/castra-test-key` works, then run `castra up` again",
      cause: err,
    });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw fsError(err, "read the project's SSH key", path);
  }
}
