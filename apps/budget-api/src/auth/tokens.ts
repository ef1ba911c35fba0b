import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const TOKEN_PATTERN = /^([a-z0-9]{10})-([A-Za-z0-9_-]{22,256})$/;

/** A new API key: `<id>-<secret>`; only the SHA-256 of the secret is ever stored. */
export function newToken(): { id: string; secret: string; token: string; secretHash: Buffer } {
  let id = '';
  for (let i = 0; i < 10; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  const secret = randomBytes(24).toString('base64url'); // 32 URL-safe characters
  return { id, secret, token: `${id}-${secret}`, secretHash: hashSecret(secret) };
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Splits `Bearer <id>-<secret>` (at the first `-`); null when it is not shaped like a token. */
export function parseBearer(header: string | undefined): { id: string; secret: string } | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)$/i.exec(header.trim());
  if (!m) return null;
  const t = TOKEN_PATTERN.exec(m[1]);
  return t ? { id: t[1], secret: t[2] } : null;
}

/** Constant-time comparison of the presented secret's hash with the stored one. */
export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const presented = hashSecret(secret);
  return storedHash.length === presented.length && timingSafeEqual(presented, storedHash);
}
