/**
 * The `shared` database on CouchDB (recovery documents), in the same document layout as user databases:
 * `{_id, u1db_rev, _attachments: {u1db_content}}`, no content attachment for a deleted document. Writes use
 * CouchDB's own compare-and-set on `_rev`, so of concurrent updates from one revision exactly one wins.
 */
import { RevisionConflictError } from '../../../common/errors.js';
import { makeReplicaUid } from '../../../common/u1db/ids.js';
import { decideDeleteDoc, decidePutDoc, type CurrentDoc } from '../common.js';
import type { SharedDoc, SharedStore } from '../types.js';
import { CouchError, seg, type CouchClient } from './client.js';
import {
  attachmentText, CONTENT_ATTACHMENT, COUCH_SCHEMA_VERSION, inlineAttachment, readOrInitConfig, type CouchSecurity, type UserDocBody,
} from './schema.js';

/** Name of the shared database, as in the original. */
export const SHARED_DB_NAME = 'shared';

/**
 * {@link SharedStore} on CouchDB.
 *
 * @example
 * const shared = await CouchSharedStore.open(client, '', DEFAULT_COUCH_SECURITY);
 */
export class CouchSharedStore implements SharedStore {
  private constructor(
    private readonly client: CouchClient,
    private readonly dbPath: string,
    private readonly replicaUid: string,
  ) {}

  /** Open (creating it with its `_security` when missing) the shared database. */
  static async open(client: CouchClient, prefix: string, security: CouchSecurity | null): Promise<CouchSharedStore> {
    const dbPath = `/${seg(prefix + SHARED_DB_NAME)}`;
    const r = await client.request('PUT', dbPath, { accept: [412] });
    if (r.status !== 412 && security !== null) await client.request('PUT', `${dbPath}/_security`, { body: security });
    const replicaUid = await readOrInitConfigLenient(client, dbPath);
    return new CouchSharedStore(client, dbPath, replicaUid);
  }

  private async read(id: string): Promise<(CurrentDoc & { content: string | null; couchRev: string }) | null> {
    try {
      const r = await this.client.request<UserDocBody>('GET', `${this.dbPath}/${seg(id)}`, { query: { attachments: true } });
      if (r.body.u1db_rev === undefined || r.body._rev === undefined) return null;
      return { rev: r.body.u1db_rev, content: attachmentText(r.body._attachments?.[CONTENT_ATTACHMENT]), couchRev: r.body._rev };
    } catch (err) {
      if (err instanceof CouchError && err.isMissingDocument) return null;
      throw err;
    }
  }

  async getDoc(id: string): Promise<SharedDoc | null> {
    const d = await this.read(id);
    return d === null ? null : { id, rev: d.rev, content: d.content, hasConflicts: false };
  }

  private async write(id: string, rev: string, content: string | null, couchRev: string | undefined): Promise<string> {
    const body: UserDocBody = { _id: id, u1db_rev: rev };
    if (couchRev !== undefined) body._rev = couchRev;
    if (content !== null) body._attachments = { [CONTENT_ATTACHMENT]: inlineAttachment(content) };
    try {
      await this.client.request('PUT', `${this.dbPath}/${seg(id)}`, { body });
    } catch (err) {
      // Someone else wrote the document since it was read: their write wins, as U1DB's revision check would say.
      if (err instanceof CouchError && err.isConflict) throw new RevisionConflictError(undefined, { cause: err });
      throw err;
    }
    return rev;
  }

  async putDoc(id: string, content: string, oldRev: string | null): Promise<string> {
    const old = await this.read(id);
    const rev = decidePutDoc(old, oldRev, this.replicaUid);
    return this.write(id, rev, content, old?.couchRev);
  }

  async deleteDoc(id: string, oldRev: string | null): Promise<string> {
    const old = await this.read(id);
    const rev = decideDeleteDoc(old, oldRev, this.replicaUid);
    return this.write(id, rev, null, old?.couchRev);
  }
}

/** The shared database of a provider always has documents; an old one without `_local/config` gets one. */
async function readOrInitConfigLenient(client: CouchClient, dbPath: string): Promise<string> {
  try {
    return await readOrInitConfig(client, dbPath, SHARED_DB_NAME);
  } catch (err) {
    if (!(err instanceof Error) || !/no _local\/config/.test(err.message)) throw err;
    await client.request('PUT', `${dbPath}/_local/config`, {
      body: { replica_uid: makeReplicaUid(), schema_version: COUCH_SCHEMA_VERSION },
    }).catch(() => undefined);
    return readOrInitConfig(client, dbPath, SHARED_DB_NAME);
  }
}
