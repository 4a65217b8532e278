/** Shared set-up for the local database tests: temp dirs, keys, and a database per test. */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalDatabase, type LocalDatabaseOptions } from '../../../src/client/db/database.js';
import { Document } from '../../../src/common/u1db/document.js';
import type { JsonObject } from '../../../src/common/u1db/json.js';

/** A fresh temporary directory; remove it with {@link removeDir}. */
export function makeTempDir(prefix = 'soledad-db-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Remove a directory made by {@link makeTempDir}. */
export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** A random 32-byte database key. */
export function makeKey(): Buffer {
  return randomBytes(32);
}

/** An open test database with replica uid `test` (as U1DB's suite uses) and a cleanup function. */
export interface TestDb {
  db: LocalDatabase;
  dir: string;
  path: string;
  key: Buffer;
  cleanup(): void;
}

/** Open a new encrypted database in a fresh temp dir. */
export function openTestDb(opts: Partial<Omit<LocalDatabaseOptions, 'path' | 'encryption'>> = {}): TestDb {
  const dir = makeTempDir();
  const file = path.join(dir, 'soledad.u1db');
  const key = makeKey();
  let db: LocalDatabase;
  try {
    db = LocalDatabase.open({ path: file, encryption: { mode: 'encrypted', key }, replicaUid: 'test', ...opts });
  } catch (err) {
    removeDir(dir);
    throw err;
  }
  return {
    db,
    dir,
    path: file,
    key,
    cleanup(): void {
      db.close();
      removeDir(dir);
    },
  };
}

/** A document as the sync tests build them (U1DB's `make_document`). */
export function makeDocument(docId: string, rev: string | null, content: JsonObject | null): Document {
  return new Document(docId, rev, content);
}

/** `[rev, content]` pairs of a document list, for compact assertions. */
export function revsAndContent(docs: readonly Document[]): Array<[string | null, JsonObject | null]> {
  return docs.map((d) => [d.rev, d.content]);
}

/** The simple and nested documents of U1DB's test suite. */
export const SIMPLE: JsonObject = { key: 'value' };
export const NESTED: JsonObject = { key: 'value', sub: { doc: 'underneath' } };
