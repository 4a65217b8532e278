/**
 * Opening the local SQLCipher file (protocol deviation 6).
 *
 * Our format is SQLCipher 4 with its defaults (4096-byte pages, HMAC-SHA512, random per-file salt) keyed with a raw
 * 256-bit key, `PRAGMA key = "x'<64 hex>'"`, where the key is scrypt(local_secret, local_salt) computed by the
 * caller. Any SQLCipher 4 build opens such a file with that one pragma.
 *
 * An original Soledad 0.10 database is SQLCipher 3 (aes-256-cbc, HMAC-SHA1, 1024-byte pages, PBKDF2 with 4000
 * iterations) keyed, because of a missing closing quote, with the 66-character *passphrase* `x'<64 hex>`. When the
 * raw key does not open a file but that passphrase does, the file is converted to our format once, in place, without
 * losing anything (see {@link openSqlCipher}).
 */
import fs from 'node:fs';
import nodePath from 'node:path';
import Database from 'better-sqlite3-multiple-ciphers';
import { DatabaseKeyError, NotSupportedError } from '../../common/errors.js';

/**
 * How to open the file. Plaintext exists only so that the benchmark can compare the same schema unencrypted; it is
 * a separate, loudly named mode so that no missing key can ever silently open or create a plaintext database.
 *
 * @example
 * const enc: DatabaseEncryption = { mode: 'encrypted', key: scryptKey }; // 32 bytes
 */
export type DatabaseEncryption =
  | { readonly mode: 'encrypted'; readonly key: Buffer }
  | { readonly mode: 'plaintext-benchmark-only' };

/** Options of {@link openSqlCipher}. */
export interface OpenSqlCipherOptions {
  /**
   * Called on the converted copy of an original SQLCipher 3 database before it replaces the original, e.g. to add
   * this package's schema additions, so that the file at `path` is always either the untouched original or complete.
   * Throwing aborts the import and leaves the original in place.
   */
  prepareImport?: (db: Database.Database) => void;
}

/** A connection returned by {@link openSqlCipher}. */
export interface OpenedSqlCipher {
  /** The keyed, configured connection (WAL, synchronous=NORMAL, temp_store=MEMORY). */
  readonly db: Database.Database;
  /** True when an original Soledad (SQLCipher 3) database was converted to our format during this open. */
  readonly imported: boolean;
}

/** Suffix of the file an import is written to before it atomically replaces the original. */
export const IMPORT_TEMP_SUFFIX = '.sqlcipher4-import';
/** Suffix of the hard link (or copy) that keeps the original SQLCipher 3 file until the import is complete. */
export const IMPORT_BACKUP_SUFFIX = '.sqlcipher3-backup';

/**
 * Page cache per connection, in KiB (negative `cache_size`). Every cache miss costs a decryption (AES-256-CBC plus
 * HMAC-SHA512 per 4 KiB page, about 5× the cost of a plain read here), so the cache should hold the working set:
 * measured on 12 000 random reads over a 40 MB database, 64 MiB took 277 ms against 1145 ms with 16 MiB (the
 * build's default). Memory is only used as pages are actually cached.
 */
const CACHE_KIB = 65536;

/**
 * WAL pages between automatic checkpoints (SQLite's default is 1000). A checkpoint decrypts each page from the WAL
 * and encrypts it again into the database file, and pages every commit touches (page 1, the transaction-log leaf,
 * sqlite_sequence, index leaves) are checkpointed once per checkpoint however often they were rewritten, so rarer
 * checkpoints save crypto work; 4000 pages bounds the WAL near 16 MiB and the replay after a crash to well under 1 s.
 */
const WAL_AUTOCHECKPOINT_PAGES = 4000;

type KeyFormat = 'sqlcipher4-raw' | 'sqlcipher3-soledad';

function keyHex(encryption: DatabaseEncryption): string | undefined {
  if (encryption.mode !== 'encrypted') return undefined;
  if (!Buffer.isBuffer(encryption.key) || encryption.key.length !== 32) {
    throw new DatabaseKeyError('The local database key must be a 32-byte Buffer');
  }
  return encryption.key.toString('hex');
}

function applyKey(db: Database.Database, hex: string, format: KeyFormat): void {
  db.pragma("cipher = 'sqlcipher'");
  if (format === 'sqlcipher4-raw') {
    db.pragma('legacy = 4');
    db.pragma(`key = "x'${hex}'"`);
  } else {
    // Soledad 0.10's pragmas.py: SQLCipher 3 defaults with kdf_iter 4000 and 1024-byte pages, and the key
    // `PRAGMA key = "x'<hex>"`: a double-quoted identifier whose text, lacking the closing quote, is a passphrase.
    db.pragma('legacy = 3');
    db.pragma('kdf_iter = 4000');
    db.pragma('cipher_page_size = 1024');
    db.pragma(`key = "x'${hex}"`);
  }
}

function isNotADatabase(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'SQLITE_NOTADB';
}

/**
 * Open and key a connection, then prove the key by reading `sqlite_master` before anything can be written.
 * Returns null when the file is not a database under this key (wrong key, other format, or not SQLite at all).
 */
function tryOpen(path: string, hex: string | undefined, format: KeyFormat): Database.Database | null {
  const db = new Database(path);
  try {
    if (hex !== undefined) applyKey(db, hex, format);
    db.prepare('SELECT count(*) FROM sqlite_master').pluck().get();
    return db;
  } catch (err) {
    db.close();
    if (isNotADatabase(err)) return null;
    throw err;
  }
}

/**
 * WAL (readers never wait for the writer, no sync per commit) for everyday writes. Opening also switches back a
 * file left in rollback mode by an interrupted bulk write (`LocalDatabase.enterBulkWrite`), after SQLite has
 * rolled back its hot journal.
 */
function configure(db: Database.Database): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  // SQLCipher does not encrypt temporary files: keep sorts and temp tables in memory so no plaintext spills to disk.
  db.pragma('temp_store = MEMORY');
  db.pragma(`cache_size = -${CACHE_KIB}`);
  db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
}

function fileSize(path: string): number {
  try {
    return fs.statSync(path).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return -1;
    throw err;
  }
}

function removeIfExists(path: string): void {
  fs.rmSync(path, { force: true });
}

function removeWithSidecars(path: string): void {
  for (const suffix of ['', '-journal', '-wal', '-shm']) removeIfExists(path + suffix);
}

function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some platforms cannot fsync a directory; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

interface MasterRow {
  type: string;
  name: string;
  sql: string;
}

/** Copy every table (rows, rowids of rowid-aliased keys, AUTOINCREMENT counters), index, trigger and view. */
function copyDatabase(src: Database.Database, dst: Database.Database): Map<string, number> {
  const objects = src.prepare(
    "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
  ).all() as MasterRow[];
  if (objects.some((o) => /^\s*CREATE\s+VIRTUAL\s+TABLE/i.test(o.sql))) {
    throw new NotSupportedError('Cannot import a database with virtual tables');
  }
  const tables = objects.filter((o) => o.type === 'table');
  const counts = new Map<string, number>();
  const copy = dst.transaction(() => {
    for (const table of tables) {
      dst.exec(table.sql);
      const columns = (src.prepare(`PRAGMA table_info(${quoteIdent(table.name)})`).all() as Array<{ name: string }>)
        .map((c) => quoteIdent(c.name));
      const select = src.prepare(`SELECT ${columns.join(', ')} FROM ${quoteIdent(table.name)}`).raw();
      const insert = dst.prepare(
        `INSERT INTO ${quoteIdent(table.name)} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
      );
      let n = 0;
      for (const row of select.iterate() as IterableIterator<unknown[]>) {
        insert.run(...row);
        n++;
      }
      counts.set(table.name, n);
    }
    const hasSequence = src.prepare("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").get() !== undefined;
    if (hasSequence) {
      for (const { name, seq } of src.prepare('SELECT name, seq FROM sqlite_sequence').all() as Array<{ name: string; seq: number }>) {
        const updated = dst.prepare('UPDATE sqlite_sequence SET seq = ? WHERE name = ?').run(seq, name).changes;
        if (updated === 0) dst.prepare('INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)').run(name, seq);
      }
    }
    for (const o of objects) if (o.type !== 'table') dst.exec(o.sql);
  });
  copy();
  return counts;
}

/**
 * Convert an original Soledad database (already opened as `legacy`) into our format. The new file is written beside
 * the original, verified, synced, and then renamed over it; until the rename the original is untouched, and a hard
 * link (or copy) of it stays as `<path>.sqlcipher3-backup` until the new file has been opened successfully.
 */
function importLegacy(path: string, legacy: Database.Database, hex: string, prepare: ((db: Database.Database) => void) | undefined): void {
  const tmp = path + IMPORT_TEMP_SUFFIX;
  const backup = path + IMPORT_BACKUP_SUFFIX;
  removeWithSidecars(tmp);
  let target: Database.Database | undefined;
  try {
    target = new Database(tmp);
    applyKey(target, hex, 'sqlcipher4-raw');
    target.pragma('journal_mode = DELETE');
    target.pragma('synchronous = FULL');
    target.pragma('temp_store = MEMORY');
    const counts = copyDatabase(legacy, target);
    for (const [table, expected] of counts) {
      const actual = Number(target.prepare(`SELECT count(*) FROM ${quoteIdent(table)}`).pluck().get());
      if (actual !== expected) throw new Error(`Import lost rows of ${table}: ${expected} read, ${actual} written`);
    }
    prepare?.(target);
    const check = target.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new Error(`Imported database failed its integrity check: ${String(check)}`);
    target.close();
    target = undefined;
  } catch (err) {
    target?.close();
    removeWithSidecars(tmp);
    legacy.close();
    throw err;
  }
  legacy.close();
  const wal = fileSize(`${path}-wal`);
  if (wal > 0) {
    // Another process still holds the original open; replacing it now could lose its writes.
    removeWithSidecars(tmp);
    throw new NotSupportedError('The original database is in use by another process; close it and retry the import');
  }
  removeIfExists(`${path}-wal`);
  removeIfExists(`${path}-shm`);
  removeIfExists(backup);
  try {
    fs.linkSync(path, backup);
  } catch {
    fs.copyFileSync(path, backup);
  }
  fs.renameSync(tmp, path);
  fsyncDirectory(nodePath.dirname(nodePath.resolve(path)));
}

/**
 * Open (creating if needed) the SQLCipher 4 database at `path`, importing an original Soledad SQLCipher 3 database
 * found there. The key is proven by reading `sqlite_master` before any write, so a wrong key leaves the file's bytes
 * untouched and throws {@link DatabaseKeyError}; so does a file that is not a database under either format.
 *
 * The hex form of the key necessarily exists as a JavaScript string while keying (SQLCipher takes it as a pragma);
 * the caller's Buffer is neither kept nor modified.
 *
 * @example
 * const { db, imported } = openSqlCipher('/home/me/.soledad/soledad.u1db', { mode: 'encrypted', key }, {
 *   prepareImport: (copy) => ensureSchema(copy, undefined),
 * });
 */
export function openSqlCipher(path: string, encryption: DatabaseEncryption, opts: OpenSqlCipherOptions = {}): OpenedSqlCipher {
  const hex = keyHex(encryption);
  // A leftover import file is from an interrupted import: the original is still in place, so start again.
  removeWithSidecars(path + IMPORT_TEMP_SUFFIX);
  const existed = fileSize(path) > 0;
  let db = tryOpen(path, hex, 'sqlcipher4-raw');
  let imported = false;
  if (db === null && hex !== undefined && existed) {
    const legacy = tryOpen(path, hex, 'sqlcipher3-soledad');
    if (legacy !== null) {
      importLegacy(path, legacy, hex, opts.prepareImport);
      imported = true;
      db = tryOpen(path, hex, 'sqlcipher4-raw');
    }
  }
  if (db === null) {
    throw new DatabaseKeyError(
      encryption.mode === 'encrypted'
        ? 'The local database could not be opened with this key (wrong key or not a Soledad database)'
        : 'The file is not a plaintext SQLite database',
    );
  }
  try {
    configure(db);
  } catch (err) {
    db.close();
    throw err;
  }
  // The new file opened with our key, so an import (this one or an interrupted earlier one) is complete.
  removeIfExists(path + IMPORT_BACKUP_SUFFIX);
  return { db, imported };
}
