/**
 * `soledad-server migrate`, `check`, `export-user` and `import-user`, each run as an operator runs it (a child
 * process with a config file), on the embedded engine and PostgreSQL:
 *
 * - every command answers `--help`;
 * - `migrate` creates the schema in an empty PostgreSQL schema and finds it the second time; `check` reports every
 *   store reachable; an unknown schema version or an unreachable server makes both exit 1 with one clear line;
 * - a user with documents, a tombstone, an attachment and a flagged blob moves from the embedded engine to
 *   PostgreSQL: the stored ciphertext and blob bytes are identical, a server on PostgreSQL serves the user, and a
 *   device with no documents syncs from it and sees exactly what the first device has.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { Soledad, type SoledadOptions } from '../../src/index.js';
import { PG_SCHEMA_VERSION } from '../../src/server/backends/postgres/schema.js';
import { blobStoreOf } from '../../src/server/backends/index.js';
import type { Backend } from '../../src/server/backends/types.js';
import {
  dropPgSchema, engineSelected, freshPgSchema, postgresTestUrl, serverEngineConfig, storedUserDocs, type ServerEngineConfig,
} from '../backends/engines.js';
import { freePort, startServerProcess, type ServerProcess } from '../e2e/server-process.js';

const SERVER_CLI = join(import.meta.dirname, '../../src/cli/soledad-server.ts');

interface Run { code: number | null; stdout: string; stderr: string }

/** `soledad-server <args>` with the given config file (and nothing else of SOLEDAD_* from the caller). */
function soledadServer(args: readonly string[], configFile: string): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SOLEDAD_')) env[k] = v;
  env['SOLEDAD_SERVER_CONFIG_FILE'] = configFile;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', SERVER_CLI, ...args], { env, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr }));
  });
}

async function pgQuery<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: postgresTestUrl() });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** Every blob of a user in the default namespace: id, flags and bytes. */
async function storedBlobs(backend: Backend, blobsPath: string, uuid: string): Promise<Array<{ id: string; flags: string[]; data: Buffer }>> {
  const store = blobStoreOf(backend, { blobsPath, concurrentBlobWrites: 4, quotaBytes: 1 << 30 });
  try {
    const out = [];
    for (const id of (await store.list(uuid, { namespace: 'default' })).sort()) {
      const ref = { user: uuid, namespace: 'default', blobId: id };
      const chunks: Buffer[] = [];
      for await (const c of (await store.open(ref)).read()) chunks.push(Buffer.from(c as Uint8Array));
      out.push({ id, flags: await store.getFlags(ref), data: Buffer.concat(chunks) });
    }
    return out;
  } finally {
    if (backend.blobs === undefined) await store.close();
  }
}

describe('soledad-server storage commands', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'soledad-storage-cli-'));
  });
  after(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** A config file with `[soledad-server]` lines. */
  function config(name: string, lines: string): string {
    const file = join(dir, `${name}.conf`);
    writeFileSync(file, `[soledad-server]\ndata_dir = ${join(dir, `${name}-data`)}\n${lines}`);
    return file;
  }

  it('migrate, check, export-user and import-user answer --help', async () => {
    const none = config('help', '');
    const expected: Record<string, RegExp[]> = {
      migrate: [/^Usage: soledad-server migrate/m, /create the storage schema/],
      check: [/^Usage: soledad-server check/m, /reachable/],
      'export-user': [/^Usage: soledad-server export-user \[options\] <uuid>/m, /-o, --output <file>/, /--namespace <ns\.\.\.>/],
      'import-user': [/^Usage: soledad-server import-user \[options\] <file>/m, /standard input/],
    };
    const runs = await Promise.all(Object.keys(expected).map(async (cmd) => ({ cmd, r: await soledadServer([cmd, '--help'], none) })));
    for (const { cmd, r } of runs) {
      assert.equal(r.code, 0, `${cmd} --help: ${r.stderr}`);
      for (const re of expected[cmd]!) assert.match(r.stdout, re, `${cmd} --help`);
    }
  });

  if (!engineSelected('postgres')) return;

  it('migrate creates the schema in an empty PostgreSQL schema, then finds it; check reports every store reachable', async () => {
    const schema = freshPgSchema();
    const conf = config('migrate', `backend = postgres\npostgres_url = ${postgresTestUrl()}\npostgres_schema = ${schema}\n`);
    try {
      assert.deepEqual(await pgQuery('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]), []);
      const first = await soledadServer(['migrate'], conf);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stderr, `postgres schema "${schema}": created at version ${PG_SCHEMA_VERSION}\n`);
      assert.deepEqual(await pgQuery(`SELECT value FROM ${schema}.soledad_meta WHERE key = 'schema_version'`), [{ value: PG_SCHEMA_VERSION }]);
      const tables = (await pgQuery<{ t: string }>('SELECT table_name AS t FROM information_schema.tables WHERE table_schema = $1', [schema])).map((r) => r.t);
      for (const t of ['user_databases', 'documents', 'transaction_log', 'sync_log', 'shared_documents', 'tokens', 'blobs', 'blob_chunks']) {
        assert.ok(tables.includes(t), `table ${t} created (got ${tables.join(', ')})`);
      }
      const second = await soledadServer(['migrate'], conf);
      assert.equal(second.code, 0, second.stderr);
      assert.equal(second.stderr, `postgres schema "${schema}": already at version ${PG_SCHEMA_VERSION}\n`);

      const check = await soledadServer(['check'], conf);
      assert.equal(check.code, 0, check.stderr);
      assert.deepEqual(check.stderr.split('\n').filter((l) => l !== ''), [
        'backend postgres: schema ok',
        'user databases: reachable',
        'shared database: reachable',
        'tokens: 0 stored',
        'blobs: kept by postgres',
      ]);
    } finally {
      await dropPgSchema(postgresTestUrl(), schema);
    }
  });

  it('an unknown schema version or an unreachable server: migrate and check exit 1 with one clear line', async () => {
    const schema = freshPgSchema();
    const conf = config('unknown', `backend = postgres\npostgres_url = ${postgresTestUrl()}\npostgres_schema = ${schema}\n`);
    try {
      assert.equal((await soledadServer(['migrate'], conf)).code, 0);
      await pgQuery(`UPDATE ${schema}.soledad_meta SET value = '99' WHERE key = 'schema_version'`);
      for (const cmd of ['check', 'migrate']) {
        const r = await soledadServer([cmd], conf);
        assert.equal(r.code, 1, `${cmd}: ${r.stderr}`);
        assert.equal(r.stderr,
          `soledad-server: postgres_url: schema "${schema}" has soledad schema version "99", this server knows only ${PG_SCHEMA_VERSION}; refusing to start\n`,
          cmd);
      }
      // Nothing was changed by the refusals.
      assert.deepEqual(await pgQuery(`SELECT value FROM ${schema}.soledad_meta WHERE key = 'schema_version'`), [{ value: '99' }]);
    } finally {
      await dropPgSchema(postgresTestUrl(), schema);
    }
    const closed = await freePort();
    const down = config('down', `backend = postgres\npostgres_url = postgres://soledad@127.0.0.1:${closed}/soledad\n`);
    const r = await soledadServer(['check'], down);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^soledad-server: postgres_url: cannot use postgres://soledad@127\\.0\\.0\\.1:${closed}/soledad \\(.*ECONNREFUSED.*\\)\\n$`));
  });

  describe('export-user from the embedded engine, import-user into PostgreSQL', () => {
    let source: ServerProcess;
    let target: ServerProcess | undefined;
    let pgEngine: ServerEngineConfig;
    before(async () => {
      source = await startServerProcess();
      pgEngine = await serverEngineConfig('postgres');
    });
    after(async () => {
      await target?.stop();
      await source?.stop();
      await pgEngine?.teardown();
    });

    it('a server on PostgreSQL serves the moved user: identical ciphertext and blobs, a new device sees the same documents', async () => {
      const uuid = randomUUID().replace(/-/g, '');
      const token = await source.token(uuid);
      const device = (name: string, server: ServerProcess, authToken: string): SoledadOptions => ({
        uuid, passphrase: 'moving house', secretsPath: join(dir, name, 'soledad.json'), localDbPath: join(dir, name, 'soledad.u1db'),
        serverUrl: server.url, certFile: server.certFile, authToken,
      });

      // Device a fills the embedded server: documents, an edit, a tombstone, an attachment and a flagged blob.
      const a = await Soledad.open(device('a', source, token));
      const docs = [];
      for (let i = 0; i < 60; i++) docs.push(await a.createDoc({ i, body: randomBytes(600).toString('base64') }, `doc-${String(i).padStart(3, '0')}`));
      docs[1]!.content = { edited: true };
      await a.putDoc(docs[1]!);
      await a.deleteDoc(docs[2]!);
      const attachment = randomBytes(200_000);
      await docs[3]!.putAttachment(attachment);
      await a.putDoc(docs[3]!);
      await docs[3]!.uploadAttachment();
      await a.blobs.put('plain-blob', randomBytes(5000));
      await a.blobs.setFlags('plain-blob', ['PROCESSED']);
      await a.sync();
      const expected = Object.fromEntries((await a.getAllDocs()).docs.map((d) => [d.docId, { rev: d.rev, content: d.content }]));
      await a.close();
      // Device b fetches the user's secrets (kept in the shared database, which is not per user) before the move.
      await (await Soledad.open(device('b', source, token))).close();

      const sourceConf = source.env['SOLEDAD_SERVER_CONFIG_FILE']!;
      const dump = join(dir, 'user.jsonl');
      const exported = await soledadServer(['export-user', uuid, '-o', dump], sourceConf);
      assert.equal(exported.code, 0, exported.stderr);
      const lines = readFileSync(dump, 'utf8').split('\n').filter((l) => l !== '');
      assert.deepEqual(JSON.parse(lines.at(-1)!), { kind: 'end', docs: 60, blobs: 2 });
      const bad = await soledadServer(['export-user', 'not a uuid!'], sourceConf);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /^soledad-server: uuid: invalid user id "not a uuid!"\n$/);

      const targetConf = config('target', pgEngine.config);
      const migrated = await soledadServer(['migrate'], targetConf);
      assert.equal(migrated.code, 0, migrated.stderr);
      const imported = await soledadServer(['import-user', dump], targetConf);
      assert.equal(imported.code, 0, imported.stderr);
      assert.equal(imported.stderr, `imported user ${uuid}: 60 documents, 2 blobs\n`);
      const twice = await soledadServer(['import-user', dump], targetConf);
      assert.equal(twice.code, 2, twice.stderr);
      assert.match(twice.stderr, /already holds documents/);

      // What each engine stores, read through the engines themselves: byte-identical documents and blobs.
      const from = await serverEngineConfig('sqlite').then((e) => e.open(source.dataDir));
      const to = await pgEngine.open(join(dir, 'target-data'));
      try {
        const fromDocs = await storedUserDocs(from, uuid);
        assert.equal(fromDocs.length, 60);
        assert.equal(fromDocs.filter((d) => d.content === null).length, 1);
        assert.deepEqual(await storedUserDocs(to, uuid), fromDocs);
        const fromBlobs = await storedBlobs(from, join(source.dataDir, 'blobs'), uuid);
        assert.equal(fromBlobs.length, 2);
        assert.deepEqual(fromBlobs.find((b) => b.id === 'plain-blob')?.flags, ['PROCESSED']);
        assert.deepEqual(await storedBlobs(to, join(dir, 'target-data', 'blobs'), uuid), fromBlobs);
      } finally {
        await from.close();
        await to.close();
      }
      // And export-user on PostgreSQL writes the same file, but for its header (engine, replica uid, generation).
      const again = await soledadServer(['export-user', uuid], targetConf);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(again.stdout.split('\n').filter((l) => l !== '').slice(1), lines.slice(1));

      // A server on PostgreSQL serves the user; device b, which holds no documents, gets all of them from it.
      target = await startServerProcess(pgEngine.config);
      const newToken = await target.token(uuid);
      const b = await Soledad.open(device('b', target, newToken));
      try {
        await b.sync();
        const got = Object.fromEntries((await b.getAllDocs()).docs.map((d) => [d.docId, { rev: d.rev, content: d.content }]));
        assert.deepEqual(got, expected);
        const onB = (await b.getDoc(docs[3]!.docId))!;
        await onB.downloadAttachment();
        const chunks: Buffer[] = [];
        for await (const c of (await onB.getAttachment())!) chunks.push(Buffer.from(c as Uint8Array));
        assert.deepEqual(Buffer.concat(chunks), attachment);
      } finally {
        await b.close();
      }
      // Device a, which synced with the old server, converges with the new one without a conflict.
      const a2 = await Soledad.open(device('a', target, newToken));
      try {
        await a2.sync();
        const all = (await a2.getAllDocs()).docs;
        assert.deepEqual(Object.fromEntries(all.map((d) => [d.docId, { rev: d.rev, content: d.content }])), expected);
        assert.equal(all.some((d) => d.hasConflicts), false);
      } finally {
        await a2.close();
      }
    });
  });
});
