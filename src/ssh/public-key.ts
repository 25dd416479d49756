/** OpenSSH public key formats a guest's sshd may accept. */
const KEY_TYPES = new Set([
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
]);

export interface PublicKey {
  type: string;
  /** The key blob, base64 as written. */
  blob: string;
  comment: string;
  /** The key as one normalised line: `type blob [comment]`. */
  line: string;
}

/** Whether `text` begins like a key type, i.e. was meant as a key rather than a file path. */
export function looksLikeKeyLine(text: string): boolean {
  return /^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+\s/.test(text.trim());
}

/** PEM, OpenSSH and PuTTY private key files all announce themselves in their first line. */
export function looksLikePrivateKey(text: string): boolean {
  return /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text) || /^PuTTY-User-Key-File-/m.test(text);
}

/**
 * Parses one `type base64 [comment]` line; undefined unless the blob is valid base64 and names the same
 * type it is declared as (catching truncated or pasted-together keys).
 */
export function parsePublicKeyLine(text: string): PublicKey | undefined {
  const [type = "", blob = "", ...commentWords] = text.trim().split(/[ \t]+/);
  if (!KEY_TYPES.has(type) || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) return undefined;
  const decoded = Buffer.from(blob, "base64");
  if (decoded.length < 4 + type.length) return undefined;
  const nameLength = decoded.readUInt32BE(0);
  if (decoded.subarray(4, 4 + nameLength).toString("latin1") !== type) return undefined;
  const comment = commentWords.join(" ");
  // A control character would split or corrupt the guest's authorized_keys line.
  if (/\p{Cc}/u.test(comment)) return undefined;
  return { type, blob, comment, line: comment ? `${type} ${blob} ${comment}` : `${type} ${blob}` };
}
