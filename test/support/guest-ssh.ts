import { execFile, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** How a test logs into the test guest's SSH mode (`castra.ssh=1`) as alpine, through a host port forward. */
export interface GuestLogin {
  /** The private key whose public half the guest got from metadata. */
  key: string;
  /** The 127.0.0.1 port forwarded to the guest's port 22. */
  port: number;
  /** Where ssh records the guest's host key (accepted on first use). */
  knownHosts: string;
}

export interface GuestCommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A new ed25519 key pair `dir/<name>` (no passphrase); returns its path and the public key's line. */
export function makeKeyPair(dir: string, name: string): { key: string; publicKey: string } {
  const key = join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "castra", "-f", key]);
  return { key, publicKey: readFileSync(`${key}.pub`, "utf8") };
}

/** Runs a shell command line in the guest as alpine; never rejects, so tests can assert failures too. */
export function runInGuest(login: GuestLogin, command: string): Promise<GuestCommandResult> {
  const args = [
    ...["-F", "/dev/null", "-i", login.key, "-p", String(login.port), "-o", "IdentitiesOnly=yes"],
    ...["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"],
    ...["-o", `UserKnownHostsFile=${login.knownHosts}`, "-o", "ConnectTimeout=60"],
    // Quiet about the first-use host key, so stderr is the command's own.
    ...["-o", "LogLevel=ERROR"],
    ...["alpine@127.0.0.1", command],
  ];
  return new Promise((resolve) => {
    execFile("ssh", args, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
