/** The filesystem blob store: the conformance suite plus what only a filesystem engine has (layout, crashes). */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FsBlobStore } from '../../../src/server/backends/fs-blobs/fs-blob-store.js';
import { runBlobStoreConformance } from './blob-store-conformance.js';

const here = dirname(fileURLToPath(import.meta.url));

runBlobStoreConformance('fs-blobs', async (opts) => {
  const root = await mkdtemp(join(tmpdir(), 'soledad-fsblobs-'));
  return {
    store: new FsBlobStore({ root, ...opts }),
    teardown: () => rm(root, { recursive: true, force: true }),
  };
});

async function* chunks(...parts: string[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.from(p);
}

async function allFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort();
}

describe('FsBlobStore specifics', () => {
  it('uses the original layout: <user>/<ns>/<id[0]>/<id[0:3]>/<id[0:6]>/<id>, .flags, .deleted', async () => {
    const root = await mkdtemp(join(tmpdir(), 'soledad-fsblobs-'));
    try {
      const store = new FsBlobStore({ root });
      await store.put({ user: 'some-user-id', namespace: 'default', blobId: 'some-blob-id' }, chunks('hello'));
      await store.setFlags({ user: 'some-user-id', namespace: 'default', blobId: 'some-blob-id' }, ['PENDING', 'FAILED']);
      await store.put({ user: 'some-user-id', namespace: 'MX', blobId: 'ab' }, chunks('x'));
      assert.deepEqual(await allFiles(root), [
        'some-user-id/MX/a/ab/ab/ab',
        'some-user-id/default/s/som/some-b/some-blob-id',
        'some-user-id/default/s/som/some-b/some-blob-id.flags',
      ]);
      const base = join(root, 'some-user-id/default/s/som/some-b/some-blob-id');
      assert.equal(readFileSync(base, 'utf8'), 'hello');
      // Python json.dumps spelling, as the original writes it.
      assert.equal(readFileSync(`${base}.flags`, 'utf8'), '["PENDING", "FAILED"]');
      await store.delete({ user: 'some-user-id', namespace: 'default', blobId: 'some-blob-id' });
      assert.ok(existsSync(`${base}.deleted`));
      assert.ok(!existsSync(base));
      assert.ok(!existsSync(`${base}.flags`));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a blob appears with its flags already in place; a stray flags file from a crash does not stick to a later put', async () => {
    const root = await mkdtemp(join(tmpdir(), 'soledad-fsblobs-'));
    try {
      const store = new FsBlobStore({ root });
      const ref = { user: 'u', namespace: 'MX', blobId: 'msg1' };
      const base = join(root, 'u/MX/m/msg/msg1/msg1');
      // Watch the directory while the put runs: the flags file must exist the moment the blob does.
      let sawBlobWithoutFlags = false;
      const done = store.put(ref, (async function* () {
        yield Buffer.from('mail');
      })(), { flags: ['PENDING'] });
      const watch = (async () => {
        for (let i = 0; i < 2000 && !existsSync(base); i++) await new Promise((r) => setImmediate(r));
        if (existsSync(base) && !existsSync(`${base}.flags`)) sawBlobWithoutFlags = true;
      })();
      await Promise.all([done, watch]);
      assert.equal(sawBlobWithoutFlags, false);
      assert.equal(readFileSync(`${base}.flags`, 'utf8'), '["PENDING"]');

      // What a crash after the flags write and before the link leaves: a flags file with no blob.
      const ref2 = { user: 'u', namespace: 'MX', blobId: 'msg2' };
      const base2 = join(root, 'u/MX/m/msg/msg2/msg2');
      await mkdir(dirname(base2), { recursive: true });
      await writeFile(`${base2}.flags`, '["PENDING"]');
      assert.deepEqual(await store.list('u', { namespace: 'MX' }), ['msg1']);
      await store.put(ref2, chunks('plain'));
      assert.deepEqual(await store.list('u', { namespace: 'MX', filterFlag: 'PENDING' }), ['msg1']);
      assert.equal(existsSync(`${base2}.flags`), false);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('reads blobs laid out by the original server', async () => {
    const root = await mkdtemp(join(tmpdir(), 'soledad-fsblobs-'));
    try {
      const dir = join(root, 'u', 'default', 'b', 'blo', 'blob-1');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'blob-1'), 'payload');
      await writeFile(join(dir, 'blob-1.flags'), '["PROCESSING"]');
      await writeFile(join(dir, 'gone.deleted'), '');
      const store = new FsBlobStore({ root });
      assert.deepEqual(await store.list('u', { namespace: 'default' }), ['blob-1']);
      assert.deepEqual(await store.list('u', { namespace: 'default', deleted: true }), ['gone']);
      assert.deepEqual(await store.getFlags({ user: 'u', namespace: 'default', blobId: 'blob-1' }), ['PROCESSING']);
      assert.equal((await store.usage('u')).used, 7);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('measures usage once, then keeps it current without walking the tree', async () => {
    const root = await mkdtemp(join(tmpdir(), 'soledad-fsblobs-'));
    try {
      const store = new FsBlobStore({ root, quotaBytes: 10_000 });
      await store.put({ user: 'u', namespace: 'default', blobId: 'a' }, chunks('12345'));
      assert.equal((await store.usage('u')).used, 5);
      // A file appearing behind the store's back is not seen: proof that usage() does not walk.
      const dir = join(root, 'u', 'default', 'z', 'z', 'z');
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'z'), Buffer.alloc(1000));
      assert.equal((await store.usage('u')).used, 5);
      await store.put({ user: 'u', namespace: 'default', blobId: 'b' }, chunks('67'));
      assert.equal((await store.usage('u')).used, 7);
      // A new process measures again and sees everything.
      assert.equal((await new FsBlobStore({ root }).usage('u')).used, 1007);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a crash mid-write (SIGKILL) leaves no visible blob; the leftover temp file is swept', async () => {
    const root = await mkdtemp(join(tmpdir(), 'soledad-fsblobs-'));
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'fixtures', 'crash-writer.ts'), root, 'crashed'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('HALF')) resolve();
        });
        child.on('exit', (code) => reject(new Error(`writer exited early (${code})`)));
      });
      child.kill('SIGKILL');
      await new Promise((resolve) => child.on('exit', resolve));
      const left = await allFiles(root);
      assert.equal(left.length, 1, `expected one temp file, got ${left.join(', ')}`);
      assert.match(left[0]!, /\/\.crashed\.[0-9a-f]+\.tmp$/);
      const store = new FsBlobStore({ root });
      const ref = { user: 'user1', namespace: 'default', blobId: 'crashed' };
      assert.equal(await store.stat(ref), null);
      assert.deepEqual(await store.list('user1', { namespace: 'default' }), []);
      assert.equal(await store.count('user1', { namespace: 'default' }), 0);
      assert.equal((await store.usage('user1')).used, 0);
      assert.deepEqual(await allFiles(root), [], 'the first measurement removes the temp file');
      await store.put(ref, chunks('now complete'));
      assert.equal((await store.stat(ref))?.size, 12);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
