/** scrypt with Soledad's fixed parameters (fact sheet §4: N=16384, r=8, p=1, 32-byte output). */
import { scrypt as scryptCb } from 'node:crypto';

/** scrypt cost parameter N used by Soledad 0.10 (`scrypt.hash` defaults). */
export const SCRYPT_N = 16384;
/** scrypt block size r. */
export const SCRYPT_R = 8;
/** scrypt parallelism p. */
export const SCRYPT_P = 1;
/** Derived key length in bytes (AES-256). */
export const SCRYPT_KEY_LENGTH = 32;

// OpenSSL needs about 128·N·r bytes for V plus small buffers; Node's default cap (32 MiB) is too close for
// comfort, so allow twice the working set explicitly.
const MAX_MEM = SCRYPT_N * SCRYPT_R * 128 * 2;

/**
 * Derive a 32-byte key with scrypt (N=16384, r=8, p=1). String passwords are UTF-8 encoded, exactly like the
 * original's `passphrase.encode('utf8')`. Runs on the libuv thread pool.
 *
 * @example
 * const key = await scryptKey('my passphrase', salt64); // 32-byte Buffer
 */
export function scryptKey(password: Buffer | string, salt: Buffer): Promise<Buffer> {
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  return new Promise((resolve, reject) => {
    scryptCb(pw, salt, SCRYPT_KEY_LENGTH, { N: SCRYPT_N, r: SCRYPT_R, p: SCRYPT_P, maxmem: MAX_MEM }, (err, key) => {
      if (typeof password === 'string') pw.fill(0);
      if (err !== null) reject(err);
      else resolve(key);
    });
  });
}
