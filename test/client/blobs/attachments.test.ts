/** Document attachments: the seed's usage example as written, then a round trip through two devices. */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AttachmentStates, withAttachments } from '../../../src/client/blobs/attachments.js';
import type { AttachmentHost } from '../../../src/client/blobs/attachments.js';
import { LocalDatabase } from '../../../src/client/db/database.js';
import { makeSecrets, readAll, startBlobServer, UUID } from './fixture.js';
import type { BlobServer, Secrets } from './fixture.js';

const HACKERS = 'Hack the planet!\n'.repeat(1000);

describe('document attachments', () => {
  let srv: BlobServer;
  let secrets: Secrets;
  const dbs: LocalDatabase[] = [];

  /** A device: the documents database and, beside it, `<uuid>_blobs.db` under the same key. */
  function device(name: string): { db: LocalDatabase; host: AttachmentHost } {
    const blobs = srv.manager(name); // creates the device directory with <uuid>_blobs.db
    const db = LocalDatabase.open({ path: join(srv.dir, name, 'soledad.u1db'), encryption: { mode: 'encrypted', key: secrets.localKey } });
    dbs.push(db);
    return { db, host: { blobs, getDoc: async (id) => db.getDoc(id) } };
  }

  before(async () => {
    secrets = makeSecrets();
    srv = await startBlobServer({ secrets });
  });
  after(async () => {
    for (const db of dbs) db.close();
    await srv.close();
  });

  it('the seed usage example works as written', async () => {
    const { db, host } = device('example');
    const file = join(srv.dir, 'hackers.txt');
    await writeFile(file, HACKERS);

    const doc = withAttachments(db.createDoc({}), host);
    let state = await doc.getAttachmentState();
    let dirty = await doc.isDirty();
    assert.equal(state, AttachmentStates.NONE);
    assert.equal(dirty, false);

    await doc.putAttachment(createReadStream(file));
    state = await doc.getAttachmentState();
    dirty = await doc.isDirty();
    assert.ok(state & AttachmentStates.LOCAL);
    assert.equal(dirty, true);

    db.putDoc(doc);
    dirty = await doc.isDirty();
    assert.equal(dirty, false);

    await doc.uploadAttachment();
    state = await doc.getAttachmentState();
    assert.ok(state & AttachmentStates.REMOTE);
    assert.equal(state, AttachmentStates.SYNCED);

    const fd = await doc.getAttachment();
    assert.equal((await readAll(fd!)).toString(), HACKERS);

    // The pointer is the content key `blob_id`, a UUID with dashes, and survives a reload of the document.
    const stored = db.getDoc(doc.docId)!;
    assert.match(String(stored.content!.blob_id), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.ok(!Object.keys(stored.content!).some((k) => k !== 'blob_id'), 'the methods never leak into the content');
  });

  it('round trip through two devices, then delete', async () => {
    const a = device('dev-a');
    const b = device('dev-b');
    const docA = withAttachments(a.db.createDoc({ subject: 'photo' }), a.host);
    await docA.putAttachment(Buffer.from('binary \u0000\u00ff payload'));
    const blobId = String(docA.content!.blob_id);
    a.db.putDoc(docA);
    assert.equal(await docA.uploadAttachment(), AttachmentStates.SYNCED);

    // Document sync is not this module's business: device B simply holds the same document.
    const docB = withAttachments(b.db.createDoc({ ...docA.content! }, docA.docId), b.host);
    assert.equal(await docB.getAttachmentState(), AttachmentStates.REMOTE);
    assert.equal(await docB.downloadAttachment(), AttachmentStates.SYNCED);
    assert.equal((await readAll((await docB.getAttachment())!)).toString(), 'binary \u0000\u00ff payload');

    // A second attachment on the same document is refused (blobs are immutable) until the first is deleted.
    await assert.rejects(docB.putAttachment('other'), (e: Error) => e.name === 'BlobAlreadyExistsError');

    await docB.deleteAttachment();
    assert.equal(docB.content!.blob_id, undefined);
    assert.equal(await docB.getAttachmentState(), AttachmentStates.NONE);
    assert.equal(await docB.isDirty(), true);
    assert.equal(await docB.getAttachment(), null);
    b.db.putDoc(docB);

    // Device A still points at it; after a blob sync its copy is gone too.
    assert.equal(await docA.getAttachmentState(), AttachmentStates.LOCAL);
    await a.host.blobs.sync();
    assert.equal(await docA.getAttachmentState(), AttachmentStates.NONE);
    assert.ok(!(await srv.store.list(UUID, { namespace: 'default' })).includes(blobId));
    assert.ok((await srv.store.list(UUID, { namespace: 'default', deleted: true })).includes(blobId));
  });

  it('documents without attachments answer NONE / null everywhere', async () => {
    const { db, host } = device('none');
    const doc = withAttachments(db.createDoc({ a: 1 }), host);
    assert.equal(await doc.uploadAttachment(), AttachmentStates.NONE);
    assert.equal(await doc.downloadAttachment(), AttachmentStates.NONE);
    assert.equal(await doc.getAttachment(), null);
    await doc.deleteAttachment();
    assert.deepEqual(doc.content, { a: 1 });
  });
});
