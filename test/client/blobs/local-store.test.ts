/** The local blobs database: chunked content, atomic visibility, statuses, the key. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3-multiple-ciphers';
import { LocalBlobStore, SYNC_STATUS_CODES } from '../../../src/client/blobs/local-store.js';
import { readAll } from './fixture.js';

describe('LocalBlobStore', () => {
  let dir: string;
  const key = randomBytes(32);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'soledad-localblobs-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('stores content in chunks of the configured size and reads it back lazily', async () => {
    const path = join(dir, 'chunks.db');
    const store = LocalBlobStore.open(path, key, 1000);
    const data = randomBytes(4321);
    const w = store.writer('default', 'b1');
    for (let i = 0; i < data.length; i += 333) w.write(data.subarray(i, i + 333));
    w.commit('PENDING_UPLOAD');
    assert.deepEqual(await readAll(store.read('default', 'b1')), data);
    const entry = store.entry('default', 'b1')!;
    assert.equal(entry.size, 4321);
    assert.equal(entry.status, 'PENDING_UPLOAD');
    assert.equal(entry.hasContent, true);
    store.close();
    // The chunk table really holds 1000-byte pieces (and the file is encrypted: it needs the key).
    const raw = new Database(path);
    raw.pragma("cipher = 'sqlcipher'");
    raw.pragma('legacy = 4');
    raw.pragma(`key = "x'${key.toString('hex')}'"`);
    const sizes = raw.prepare('SELECT length(data) AS n FROM blob_chunks ORDER BY seq').all() as Array<{ n: number }>;
    assert.deepEqual(sizes.map((r) => r.n), [1000, 1000, 1000, 1000, 321]);
    assert.equal((raw.prepare('SELECT sync_status FROM blob_entries').get() as { sync_status: number }).sync_status, SYNC_STATUS_CODES.PENDING_UPLOAD);
    raw.close();
    assert.throws(() => LocalBlobStore.open(path, randomBytes(32)), /key/i);
  });

  it('content is invisible until commit; abort and crashes leave nothing', async () => {
    const path = join(dir, 'atomic.db');
    const store = LocalBlobStore.open(path, key, 100);
    const w = store.writer('ns', 'half');
    w.write(randomBytes(550));
    assert.equal(store.entry('ns', 'half'), undefined);
    assert.deepEqual(store.list('ns'), []);
    assert.throws(() => store.read('ns', 'half'));
    assert.throws(() => store.writer('ns', 'half'), /already being written/);
    w.abort();
    assert.deepEqual(store.list('ns'), []);
    // A "crash": chunks written, never committed, process gone (the connection simply closes).
    const crashed = store.writer('ns', 'crashed');
    crashed.write(randomBytes(550));
    store.close();
    const reopened = LocalBlobStore.open(path, key, 100);
    assert.deepEqual(reopened.list('ns'), []);
    reopened.close();
    const raw = new Database(path);
    raw.pragma("cipher = 'sqlcipher'");
    raw.pragma('legacy = 4');
    raw.pragma(`key = "x'${key.toString('hex')}'"`);
    assert.equal((raw.prepare('SELECT count(*) AS n FROM blob_chunks').get() as { n: number }).n, 0, 'orphan chunks swept');
    raw.close();
  });

  it('tracks statuses per namespace, retries, and refuses a second content', () => {
    const store = LocalBlobStore.open(join(dir, 'status.db'), key);
    const w = store.writer('a', 'x');
    w.write(Buffer.from('1'));
    w.commit('SYNCED');
    assert.throws(() => store.writer('a', 'x'), /already has content/);
    store.setStatus('b', 'x', 'PENDING_DOWNLOAD');
    store.setStatuses('b', ['y', 'z'], 'PENDING_DOWNLOAD');
    assert.deepEqual(store.listStatus('PENDING_DOWNLOAD', 'b'), ['x', 'y', 'z']);
    assert.deepEqual(store.listStatus('PENDING_DOWNLOAD', 'a'), []);
    assert.deepEqual(store.list('a'), ['x']);
    assert.deepEqual(store.list('b'), []);
    assert.equal(store.incrementRetries('b', 'x'), 1);
    assert.equal(store.incrementRetries('b', 'x'), 2);
    store.resetRetries('b', 'x');
    assert.equal(store.entry('b', 'x')!.retries, 0);
    assert.deepEqual(store.progress(), { SYNCED: 1, PENDING_DOWNLOAD: 3 });
    assert.deepEqual(store.listStatusAll('PENDING_DOWNLOAD'), [['b', 'x'], ['b', 'y'], ['b', 'z']]);
    store.dropContent('a', 'x');
    assert.equal(store.entry('a', 'x')!.hasContent, false);
    store.remove('b', 'x');
    assert.equal(store.entry('b', 'x'), undefined);
    store.close();
    assert.throws(() => store.list('a'), (e: Error) => e.name === 'DatabaseClosedError');
  });
  it('imports a blobs database written by the original client (whole payload rows, sync_state) once', async () => {
    const path = join(dir, 'original.db');
    const raw = new Database(path);
    raw.pragma("cipher = 'sqlcipher'");
    raw.pragma('legacy = 4');
    raw.pragma(`key = "x'${key.toString('hex')}'"`);
    raw.exec(`CREATE TABLE blobs (blob_id PRIMARY KEY, payload BLOB, namespace TEXT, sync_status INT default 2, retries INT default 0);
      CREATE TABLE sync_state (blob_id PRIMARY KEY, namespace TEXT, sync_status INT default 2, retries INT default 0);`);
    const big = randomBytes(150_000);
    raw.prepare('INSERT INTO blobs (blob_id, payload, namespace) VALUES (?, ?, ?)').run('b1', big, '');
    raw.prepare('INSERT INTO blobs (blob_id, payload, namespace) VALUES (?, ?, ?)').run('b2', Buffer.from('mx'), 'MX');
    raw.prepare('INSERT INTO sync_state (blob_id, namespace, sync_status) VALUES (?, ?, ?)').run('b1', '', 1);
    raw.prepare('INSERT INTO sync_state (blob_id, namespace, sync_status) VALUES (?, ?, ?)').run('b3', '', 3);
    raw.close();
    const store = LocalBlobStore.open(path, key, 65536);
    assert.deepEqual(store.list('default'), ['b1']);
    assert.deepEqual(await readAll(store.read('default', 'b1')), big);
    assert.equal(store.entry('default', 'b1')!.status, 'SYNCED');
    assert.equal(store.entry('MX', 'b2')!.status, 'PENDING_UPLOAD');
    assert.equal((await readAll(store.read('MX', 'b2'))).toString(), 'mx');
    assert.equal(store.entry('default', 'b3')!.status, 'PENDING_DOWNLOAD');
    assert.equal(store.entry('default', 'b3')!.hasContent, false);
    store.close();
    const again = LocalBlobStore.open(path, key, 65536);
    assert.deepEqual(again.progress(), { SYNCED: 1, PENDING_UPLOAD: 1, PENDING_DOWNLOAD: 1 });
    again.close();
  });
});
