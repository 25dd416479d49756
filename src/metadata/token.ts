import { createHmac, timingSafeEqual } from "node:crypto";

/** The TTL range EC2 accepts for `X-aws-ec2-metadata-token-ttl-seconds`. */
export const MIN_TOKEN_TTL_SECONDS = 1;
export const MAX_TOKEN_TTL_SECONDS = 21_600;

/**
 * IMDSv2 session tokens. Each guest connection runs in a fresh process, so a token carries its own
 * expiry and an HMAC over it with the VM's secret: stateless, and unforgeable without the secret.
 */
export function issueToken(secret: string, ttlSeconds: number, nowMs: number): string {
  const expiry = String(Math.floor(nowMs / 1000) + ttlSeconds);
  return `${Buffer.from(expiry).toString("base64url")}.${sign(secret, expiry).toString("base64url")}`;
}

export type TokenVerdict = "valid" | "expired" | "invalid";

export function verifyToken(secret: string, token: string, nowMs: number): TokenVerdict {
  const [encodedExpiry, encodedMac, ...rest] = token.split(".");
  if (!encodedExpiry || !encodedMac || rest.length > 0) return "invalid";
  const expiry = Buffer.from(encodedExpiry, "base64url").toString();
  if (!/^[0-9]{1,12}$/.test(expiry)) return "invalid";
  const expected = sign(secret, expiry);
  const given = Buffer.from(encodedMac, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return "invalid";
  return Number(expiry) * 1000 > nowMs ? "valid" : "expired";
}

/** Parses the TTL header; undefined when it is missing, not a whole number or out of range. */
export function parseTokenTtl(value: string | undefined): number | undefined {
  if (value === undefined || !/^[0-9]{1,6}$/.test(value.trim())) return undefined;
  const ttl = Number(value.trim());
  return ttl >= MIN_TOKEN_TTL_SECONDS && ttl <= MAX_TOKEN_TTL_SECONDS ? ttl : undefined;
}

function sign(secret: string, expiry: string): Buffer {
  // The versioned prefix keeps a later token format from ever verifying as this one.
  return createHmac("sha256", secret).update(`castra-imds-v1.${expiry}`).digest();
}
