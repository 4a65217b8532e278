/**
 * Rules every engine applies the same way: database names, the U1DB write decisions of §2b, token hashing,
 * and a per-key async mutex. Engines import these so that only storage differs between them.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  BadRequestError,
  DocumentAlreadyDeletedError,
  DocumentDoesNotExistError,
  RevisionConflictError,
} from '../../common/errors.js';
import { incrementRev, isNewer, maximizeAndIncrement, parseRev } from '../../common/u1db/vectorclock.js';
import { utf8Text } from '../../common/utf8.js';
import type { IncomingDoc, PutState } from './types.js';

const UUID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const DB_NAME_RE = /^user-[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/**
 * Whether `uuid` may name a user here. Stricter than the original's `[^/]+` so that it is always safe as a
 * file name; LEAP uuids (32 lowercase hex) qualify.
 *
 * @example
 * isValidUuid('0123456789abcdef0123456789abcdef'); // true
 */
export function isValidUuid(uuid: string): boolean {
  return UUID_RE.test(uuid);
}

/**
 * Whether `name` is a user database name `user-<uuid>`.
 *
 * @example
 * isValidUserDbName('user-0123abcd'); // true
 * isValidUserDbName('user-../x');     // false
 */
export function isValidUserDbName(name: string): boolean {
  return DB_NAME_RE.test(name);
}

/** Throw {@link BadRequestError} unless `name` is a valid user database name. */
export function assertUserDbName(name: string): void {
  if (!isValidUserDbName(name)) throw new BadRequestError('Invalid database name');
}

/** What the stored side looks like when a document arrives. */
export interface CurrentDoc {
  /** Stored revision. */
  readonly rev: string;
  /** Stored content (a string or its UTF-8 bytes), `null` for a tombstone. */
  readonly content: string | Buffer | null;
}

/** Whether two contents are the same text, whether given as strings or as UTF-8 bytes. */
function sameContent(a: string | Buffer | null, b: string | Buffer | null): boolean {
  if (a === null || b === null) return a === b;
  if (typeof a === 'string' && typeof b === 'string') return a === b;
  const bytes = (c: string | Buffer): Buffer => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c);
  return bytes(a).equals(bytes(b));
}

/**
 * The document with its content as a string, for an engine that stores strings: an upload hands content over as
 * the bytes it arrived as.
 *
 * @example
 * const docs = incoming.map(textContent);
 */
export function textContent(doc: IncomingDoc): IncomingDoc & { readonly content: string | null } {
  return Buffer.isBuffer(doc.content) ? { ...doc, content: utf8Text(doc.content) } : doc as IncomingDoc & { readonly content: string | null };
}

/** Decision of {@link decidePutIfNewer}: the state and, when something is stored, the revision to store. */
export interface PutDecision {
  /** U1DB outcome. */
  readonly state: PutState;
  /** Revision to write, or `null` when nothing is written. */
  readonly storeRev: string | null;
}

/**
 * U1DB `_put_doc_if_newer` with `save_conflict=False` (§2b), for a database that never holds conflicts: the
 * incoming revision wins if newer; equal revisions converge; an older one is superseded; equal content on
 * concurrent revisions is merged under a new revision of `localReplicaUid`; anything else is a conflict and
 * nothing is written.
 *
 * @example
 * decidePutIfNewer(null, { rev: 'a:1', content: '{}' }, 'srv'); // { state: 'inserted', storeRev: 'a:1' }
 */
export function decidePutIfNewer(cur: CurrentDoc | null, incoming: CurrentDoc, localReplicaUid: string): PutDecision {
  if (parseRev(incoming.rev).size === 0) throw new BadRequestError('A synced document needs a revision');
  if (isNewer(incoming.rev, cur?.rev)) return { state: 'inserted', storeRev: incoming.rev };
  // cur is non-null from here: any non-empty revision is newer than none.
  const current = cur!;
  if (incoming.rev === current.rev) return { state: 'converged', storeRev: null };
  if (isNewer(current.rev, incoming.rev)) return { state: 'superseded', storeRev: null };
  if (sameContent(incoming.content, current.content)) {
    return { state: 'superseded', storeRev: maximizeAndIncrement(localReplicaUid, incoming.rev, current.rev) };
  }
  return { state: 'conflicted', storeRev: null };
}

export { validateGenAndTransId, validateSource } from '../../common/u1db/sync-source.js';


/**
 * U1DB `put_doc` revision rules: returns the new revision or throws RevisionConflictError.
 *
 * @example
 * decidePutDoc(null, null, 'r');            // 'r:1' (create)
 * decidePutDoc({ rev: 'r:1', content: '{}' }, 'r:1', 'r'); // 'r:2' (update)
 */
export function decidePutDoc(old: CurrentDoc | null, oldRev: string | null, replicaUid: string): string {
  if (old !== null && oldRev === null && old.content === null) return incrementRev(old.rev, replicaUid);
  if (old !== null ? old.rev !== oldRev : oldRev !== null) throw new RevisionConflictError();
  return incrementRev(oldRev, replicaUid);
}

/**
 * U1DB `delete_doc` rules: returns the tombstone's revision or throws.
 *
 * @example
 * decideDeleteDoc({ rev: 'r:1', content: '{}' }, 'r:1', 'r'); // 'r:2'
 */
export function decideDeleteDoc(old: CurrentDoc | null, oldRev: string | null, replicaUid: string): string {
  if (old === null) throw new DocumentDoesNotExistError();
  if (old.rev !== oldRev) throw new RevisionConflictError();
  if (old.content === null) throw new DocumentAlreadyDeletedError();
  return incrementRev(oldRev, replicaUid);
}

/** Bytes a document counts for in the quota. */
export function docSizeBytes(id: string, rev: string, content: string | Buffer | null): number {
  return Buffer.byteLength(id) + Buffer.byteLength(rev) + (content === null ? 0 : Buffer.byteLength(content));
}

// ---- tokens ----

const SHA512_HEX_RE = /^[0-9a-f]{128}$/;

/**
 * `sha512(token)` as lowercase hex: the id of a token record in the LEAP platform's tokens database.
 *
 * @example
 * tokenHash('secret').length; // 128
 */
export function tokenHash(token: string): string {
  return createHash('sha512').update(token, 'utf8').digest('hex');
}

/** Whether `s` looks like a token hash (128 lowercase hex digits). */
export function isTokenHash(s: string): boolean {
  return SHA512_HEX_RE.test(s);
}

/**
 * A new random token: 32 bytes, URL-safe base64 (no `:`, so it survives the `uuid:token` header). Never begins
 * with `-`, so it can be passed to a command line without being taken for an option.
 */
export function generateToken(): string {
  for (;;) {
    const token = randomBytes(32).toString('base64url');
    if (!token.startsWith('-')) return token;
  }
}

/**
 * Compare two strings in time independent of where they differ, through their SHA-512 digests (equal length,
 * so `timingSafeEqual` applies and lengths leak nothing).
 *
 * @example
 * constantTimeEqual('a', 'a'); // true
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const da = createHash('sha512').update(a, 'utf8').digest();
  const db = createHash('sha512').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}

// ---- concurrency ----

/**
 * One async lock per key: writers to the same user database queue up, different databases run in parallel.
 *
 * @example
 * const release = await mutex.lock('user-abc');
 * try { write(); } finally { release(); }
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  /** Wait for the key and hold it until the returned function is called. */
  async lock(key: string): Promise<() => void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => current);
    this.tails.set(key, tail);
    await previous;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
      // Forget idle keys so the map does not grow with every database ever touched.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }

  /** Run `fn` while holding the key. */
  async run<T>(key: string, fn: () => Promise<T> | T): Promise<T> {
    const release = await this.lock(key);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
