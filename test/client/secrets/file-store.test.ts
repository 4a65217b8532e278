import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSecretsFile, removeSecretsFile, writeSecretsFile } from '../../../src/client/secrets/file-store.js';
import { SecretsFileCorruptedError } from '../../../src/common/errors.js';
import { tempDir } from './helpers.js';

test('write then read; mode 0600; no temp file left behind', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, 'sub', 'soledad.json');
    await writeSecretsFile(path, '{"a": 1}');
    assert.deepEqual(await readSecretsFile(path), { a: 1 });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    await writeSecretsFile(path, '{"a": 2}');
    assert.deepEqual(await readSecretsFile(path), { a: 2 });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(join(dir, 'sub')), ['soledad.json']);
  } finally {
    await cleanup();
  }
});

test('a missing file reads as null; unparsable text is SecretsFileCorruptedError', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    assert.equal(await readSecretsFile(join(dir, 'nope.json')), null);
    const p = join(dir, 'bad.json');
    await writeFile(p, '{"length": 14');
    await assert.rejects(readSecretsFile(p), SecretsFileCorruptedError);
    await removeSecretsFile(p);
    await removeSecretsFile(p);
    assert.equal(await readSecretsFile(p), null);
  } finally {
    await cleanup();
  }
});

test('a failed write leaves the old file intact', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const path = join(dir, 'soledad.json');
    await writeSecretsFile(path, 'old');
    // the target path is a directory's child that cannot be created: rename fails, old bytes stay
    await assert.rejects(writeSecretsFile(join(path, 'child'), 'new'));
    assert.equal(await readFile(path, 'utf8'), 'old');
    assert.deepEqual(await readdir(dir), ['soledad.json']);
    // rename over a non-empty directory fails: the temporary file must be removed again
    await mkdir(join(dir, 'target', 'x'), { recursive: true });
    await assert.rejects(writeSecretsFile(join(dir, 'target'), 'new'));
    assert.deepEqual((await readdir(dir)).sort(), ['soledad.json', 'target']);
  } finally {
    await cleanup();
  }
});
