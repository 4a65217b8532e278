/**
 * Recovery codes: a random string the user writes down; the secrets wrapped under it (v2 format, the code as
 * the scrypt password) live in the shared db under `sha256(utf8(code) + uuid)` and beside the secrets file.
 */
import { createHash, randomInt } from 'node:crypto';

/** Number of letters in a recovery code: 24 letters of 26 give about 113 bits. */
export const RECOVERY_CODE_LENGTH = 24;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz';

/**
 * A new recovery code of {@link RECOVERY_CODE_LENGTH} lowercase letters, each uniform (`randomInt` rejects
 * biased draws).
 *
 * @example
 * generateRecoveryCode(); // e.g. 'qhzbtmkwpaxrfdlcuvjsenoy'
 */
export function generateRecoveryCode(): string {
  let code = '';
  for (let i = 0; i < RECOVERY_CODE_LENGTH; i++) code += ALPHABET[randomInt(ALPHABET.length)];
  return code;
}

/** Whether `code` looks like a recovery code (lowercase letters only, at least 20), ignoring spaces. */
export function isRecoveryCode(code: string): boolean {
  return /^[a-z]{20,}$/.test(normalizeRecoveryCode(code));
}

/** Drop spaces and dashes a user may type while copying a code, and lower-case it. */
export function normalizeRecoveryCode(code: string): string {
  return code.replace(/[\s-]/g, '').toLowerCase();
}

/**
 * Id of the shared-db document holding secrets wrapped under `secret` (a passphrase or a recovery code):
 * `sha256(utf8(secret) + utf8(uuid))` in lowercase hex, as Soledad 0.10 computes it.
 *
 * @example
 * recoveryDocId('123', 'some-uuid'); // 64 hex chars
 */
export function recoveryDocId(secret: string, uuid: string): string {
  return createHash('sha256').update(Buffer.from(secret + uuid, 'utf8')).digest('hex');
}
