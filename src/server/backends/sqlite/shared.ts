/**
 * The shared (recovery) database of the embedded engine: `<data_dir>/shared.db`.
 */
import { makeReplicaUid } from '../../../common/u1db/ids.js';
import { decideDeleteDoc, decidePutDoc } from '../common.js';
import type { SharedDoc, SharedStore } from '../types.js';
import { openSqlite, type Db } from './connection.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS u1db_config (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (doc_id TEXT PRIMARY KEY, rev TEXT NOT NULL, content TEXT);
`;

interface Row { rev: string; content: string | null }

/**
 * {@link SharedStore} on one SQLite file. Each operation is a synchronous transaction on one connection, so the
 * read-check-write of a revision can never interleave with another request.
 */
export class SqliteSharedStore implements SharedStore {
  private readonly db: Db;
  private readonly replicaUid: string;
  private readonly getStmt;
  private readonly putStmt;

  constructor(file: string) {
    this.db = openSqlite(file, { mustExist: false });
    this.db.exec(SCHEMA);
    this.db.prepare('INSERT OR IGNORE INTO u1db_config (name, value) VALUES (?, ?)').run('replica_uid', makeReplicaUid());
    const uid = this.db.prepare<[], { value: string }>("SELECT value FROM u1db_config WHERE name = 'replica_uid'").get();
    this.replicaUid = uid!.value;
    this.getStmt = this.db.prepare<[string], Row>('SELECT rev, content FROM documents WHERE doc_id = ?');
    this.putStmt = this.db.prepare<[string, string, string | null]>(
      `INSERT INTO documents (doc_id, rev, content) VALUES (?, ?, ?)
       ON CONFLICT (doc_id) DO UPDATE SET rev = excluded.rev, content = excluded.content`);
  }

  async getDoc(id: string): Promise<SharedDoc | null> {
    const row = this.getStmt.get(id);
    return row === undefined ? null : { id, rev: row.rev, content: row.content, hasConflicts: false };
  }

  async putDoc(id: string, content: string, oldRev: string | null): Promise<string> {
    return this.db.transaction(() => {
      const rev = decidePutDoc(this.getStmt.get(id) ?? null, oldRev, this.replicaUid);
      this.putStmt.run(id, rev, content);
      return rev;
    }).immediate();
  }

  async deleteDoc(id: string, oldRev: string | null): Promise<string> {
    return this.db.transaction(() => {
      const rev = decideDeleteDoc(this.getStmt.get(id) ?? null, oldRev, this.replicaUid);
      this.putStmt.run(id, rev, null);
      return rev;
    }).immediate();
  }

  /** Close the file. */
  close(): void {
    this.db.close();
  }
}
