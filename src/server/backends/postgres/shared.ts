/**
 * The shared (recovery) database of the PostgreSQL engine: table `shared_documents`, with U1DB `put_doc` /
 * `delete_doc` revision rules. Each write is a transaction holding the document's row, so of concurrent updates
 * from one revision exactly one wins, whichever process serves it.
 */
import { RevisionConflictError } from '../../../common/errors.js';
import { makeReplicaUid } from '../../../common/u1db/ids.js';
import { decideDeleteDoc, decidePutDoc, type CurrentDoc } from '../common.js';
import type { SharedDoc, SharedStore } from '../types.js';
import { isPgError, type PgDatabase } from './connection.js';

/**
 * {@link SharedStore} on PostgreSQL.
 *
 * @example
 * const shared = new PgSharedStore(db);
 * const rev = await shared.putDoc('recovery-id', '{"v":1}', null);
 */
export class PgSharedStore implements SharedStore {
  private replicaUid: string | undefined;

  constructor(private readonly db: PgDatabase) {}

  /** The shared database's replica uid, created once and kept in `soledad_meta`. */
  private async uid(): Promise<string> {
    if (this.replicaUid !== undefined) return this.replicaUid;
    await this.db.query("INSERT INTO soledad_meta (key, value) VALUES ('shared_replica_uid', $1) ON CONFLICT (key) DO NOTHING", [makeReplicaUid()]);
    const r = await this.db.query<{ value: string }>("SELECT value FROM soledad_meta WHERE key = 'shared_replica_uid'");
    this.replicaUid = r.rows[0]!.value;
    return this.replicaUid;
  }

  async getDoc(id: string): Promise<SharedDoc | null> {
    const r = await this.db.query<{ rev: string; content: string | null }>('SELECT rev, content FROM shared_documents WHERE doc_id = $1', [id]);
    const row = r.rows[0];
    return row === undefined ? null : { id, rev: row.rev, content: row.content, hasConflicts: false };
  }

  private async write(id: string, decide: (old: CurrentDoc | null, uid: string) => string, content: string | null): Promise<string> {
    const uid = await this.uid();
    try {
      return await this.db.transaction(async (c) => {
        const r = await c.query<{ rev: string; content: string | null }>(
          'SELECT rev, content FROM shared_documents WHERE doc_id = $1 FOR UPDATE', [id]);
        const old = r.rows[0] ?? null;
        const rev = decide(old, uid);
        if (old === null) {
          await c.query('INSERT INTO shared_documents (doc_id, rev, content) VALUES ($1, $2, $3)', [id, rev, content]);
        } else {
          await c.query('UPDATE shared_documents SET rev = $2, content = $3 WHERE doc_id = $1', [id, rev, content]);
        }
        return rev;
      });
    } catch (err) {
      // Two creators of the same new id: the loser's insert hits the primary key.
      if (isPgError(err, '23505')) throw new RevisionConflictError(undefined, { cause: err });
      throw err;
    }
  }

  async putDoc(id: string, content: string, oldRev: string | null): Promise<string> {
    return this.write(id, (old, uid) => decidePutDoc(old, oldRev, uid), content);
  }

  async deleteDoc(id: string, oldRev: string | null): Promise<string> {
    return this.write(id, (old, uid) => decideDeleteDoc(old, oldRev, uid), null);
  }
}
