/**
 * The `Authorization` header of Soledad 0.10 (fact sheet §5a): `Token <std-base64("uuid:token")>`.
 */

/** Credentials carried by a `Token` authorization header. */
export interface TokenCredentials {
  /** The user's uuid (or, on the services port, the service name). */
  uuid: string;
  /** The secret token. */
  token: string;
}

/**
 * Build the header value the original client sends.
 *
 * @example
 * encodeTokenAuthorization('0123abcd', 's3cret'); // 'Token MDEyM2FiY2Q6czNjcmV0'
 */
export function encodeTokenAuthorization(uuid: string, token: string): string {
  return `Token ${Buffer.from(`${uuid}:${token}`, 'utf8').toString('base64')}`;
}

const BASE64_RE = /^[A-Za-z0-9+/]+={0,3}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parse a header value: scheme `Token` case-insensitively, standard base64 with lenient padding (the original
 * decodes `value + '==='`), split on the first `:`. Returns `null` for anything malformed, including an empty
 * uuid or token.
 *
 * @example
 * parseTokenAuthorization('token MDEyM2FiY2Q6czNjcmV0'); // { uuid: '0123abcd', token: 's3cret' }
 */
export function parseTokenAuthorization(header: string | undefined): TokenCredentials | null {
  if (header === undefined) return null;
  const m = /^\s*(\S+)\s+(\S+)\s*$/.exec(header);
  if (m === null || m[1]!.toLowerCase() !== 'token') return null;
  const b64 = m[2]!;
  if (!BASE64_RE.test(b64)) return null;
  const unpadded = b64.replace(/=+$/, '');
  // A single leftover base64 character cannot encode a byte: binascii rejects it too.
  if (unpadded.length % 4 === 1) return null;
  let decoded: string;
  try {
    decoded = utf8.decode(Buffer.from(unpadded, 'base64'));
  } catch {
    return null;
  }
  const sep = decoded.indexOf(':');
  if (sep <= 0 || sep === decoded.length - 1) return null;
  return { uuid: decoded.slice(0, sep), token: decoded.slice(sep + 1) };
}
