/** U1DB identifiers (§2a): `D-<hex>` doc ids, `T-<hex>` transaction ids, hex replica uids. */
import { randomUUID } from 'node:crypto';

const DOC_ID_RE = /^[a-zA-Z0-9.%_-]+$/;

function uuidHex(): string {
  // Sliced rather than a global regex replace: one of these is made per document written.
  const u = randomUUID();
  return u.slice(0, 8) + u.slice(9, 13) + u.slice(14, 18) + u.slice(19, 23) + u.slice(24);
}

/** A new document id, `D-<uuid4 hex>`. */
export function makeDocId(): string {
  return `D-${uuidHex()}`;
}

/** A new transaction id, `T-<uuid4 hex>`. */
export function makeTransactionId(): string {
  return `T-${uuidHex()}`;
}

/** A new replica uid, `uuid4().hex`. */
export function makeReplicaUid(): string {
  return uuidHex();
}

/** Whether `id` is a valid U1DB document id (`[a-zA-Z0-9.%_-]+`). */
export function isValidDocId(id: unknown): id is string {
  return typeof id === 'string' && DOC_ID_RE.test(id);
}

/** Whether `uid` may be used as a replica uid inside a revision (no `:` or `|`). */
export function isValidReplicaUid(uid: unknown): uid is string {
  return typeof uid === 'string' && uid.length > 0 && !uid.includes(':') && !uid.includes('|');
}
