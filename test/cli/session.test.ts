/**
 * End to end: a real `soledad-server` process and the `soledad` command line run as child processes, driving a
 * whole session the way a user would: init, documents, an index, sync with progress on a non-TTY, a second
 * device, a conflict, a recovery code and a third device, status, and the error lines.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { startServerProcess, type ServerProcess } from '../e2e/server-process.js';
import { lines, runSoledad, type CliResult } from './run-cli.js';

const PASSPHRASE = 'correct horse battery staple';

let server: ServerProcess;
let configDir: string;
let uuid: string;
let token: string;

before(async () => {
  server = await startServerProcess();
  configDir = mkdtempSync(join(tmpdir(), 'soledad-cli-'));
  uuid = randomUUID().replace(/-/g, '');
  token = await server.token(uuid);
});
after(async () => {
  await server?.stop();
  rmSync(configDir, { recursive: true, force: true });
});

/** `soledad --profile <profile> <args>` with the test's config dir and the passphrase in the environment. */
function sol(profile: string, args: string[], opts: { passphrase?: string; env?: Record<string, string>; input?: string } = {}): Promise<CliResult> {
  return runSoledad(['--profile', profile, ...args], {
    env: { SOLEDAD_CONFIG_DIR: configDir, SOLEDAD_PASSPHRASE: opts.passphrase ?? PASSPHRASE, ...opts.env },
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
}

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stderr}`);
  return r;
}

function json<T>(r: CliResult): T {
  return JSON.parse(r.stdout) as T;
}

function connect(): string[] {
  return ['--server', server.url, '--uuid', uuid, '--token', token, '--ca', server.certFile];
}

/** One error line, the named error first, no stack trace. */
function assertOneErrorLine(r: CliResult, name: string): void {
  const errLines = lines(r.stderr);
  assert.equal(errLines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.match(errLines[0]!, new RegExp(`^${name}: .+ — .+`));
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace without --debug');
}

type DocJson = { id: string; rev: string; content: Record<string, unknown> | null; hasConflicts: boolean };

describe('a whole session through the soledad CLI against a real server', () => {
  const ids: { hello?: string; note?: string } = {};

  it('init creates a private profile; the passphrase is stored nowhere', async () => {
    const r = ok(await sol('laptop', ['init', ...connect()]), 'init');
    assert.match(r.stdout, /initialized profile 'laptop'/);
    const dir = join(configDir, 'laptop');
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const name of readdirSync(dir)) {
      assert.equal(statSync(join(dir, name)).mode & 0o777, 0o600, `${name} must be mode 0600`);
      assert.ok(!readFileSync(join(dir, name)).includes(PASSPHRASE), `${name} must not contain the passphrase`);
    }
    const profile = JSON.parse(readFileSync(join(dir, 'profile.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(profile['uuid'], uuid);
    assert.equal(profile['token'], token);
    assert.equal(profile['server'], server.url);

    const again = await sol('laptop', ['init', ...connect()]);
    assert.equal(again.code, 2, 'init over an existing profile is a usage error');
    assertOneErrorLine(again, 'UsageError');
  });

  it('creates documents (argument and stdin), reads them back, and queries an index', async () => {
    const created = json<DocJson>(ok(await sol('laptop', ['doc', 'create', '{"subject":"Hello","tags":["inbox"]}', '--json']), 'create'));
    assert.match(created.id, /^D-/);
    assert.deepEqual(created.content, { subject: 'Hello', tags: ['inbox'] });
    ids.hello = created.id;
    const fromStdin = ok(await sol('laptop', ['doc', 'create', '-', '--id', 'note-1'], { input: '{"subject":"hi from stdin"}' }), 'create -');
    assert.equal(fromStdin.stdout.trim(), 'note-1');
    ids.note = 'note-1';

    const got = ok(await sol('laptop', ['doc', 'get', 'note-1']), 'get');
    assert.deepEqual(JSON.parse(got.stdout), { subject: 'hi from stdin' });

    ok(await sol('laptop', ['index', 'create', 'by-subject', 'lower(subject)']), 'index create');
    const hits = json<DocJson[]>(ok(await sol('laptop', ['index', 'query', 'by-subject', 'h*', '--json']), 'index query'));
    assert.deepEqual(hits.map((d) => d.id).sort(), [ids.hello, 'note-1'].sort());
    const count = json<{ count: number }>(ok(await sol('laptop', ['--json', 'index', 'count', 'by-subject', 'hello']), 'count'));
    assert.equal(count.count, 1);
    const keys = json<string[][]>(ok(await sol('laptop', ['index', 'keys', 'by-subject', '--json']), 'keys'));
    assert.deepEqual(keys.sort(), [['hello'], ['hi from stdin']]);
    const range = json<DocJson[]>(ok(await sol('laptop', ['index', 'range', 'by-subject', '--start', 'hello', '--end', 'hello', '--json']), 'range'));
    assert.deepEqual(range.map((d) => d.id), [ids.hello]);
  });

  it('sync renders progress as plain lines on a non-TTY and ends with a one-line summary', async () => {
    const r = ok(await sol('laptop', ['sync']), 'sync');
    assert.match(r.stdout, /^synced: sent 2 docs \(.+\), received 0 docs .+\n$/);
    const progress = lines(r.stderr);
    assert.ok(progress.length >= 2, `expected progress lines, got:\n${r.stderr}`);
    for (const line of progress) {
      assert.match(line, /^sync (info|upload|download|record|done): up \d+\/\d+ docs \(.+\), down \d+\/(\d+|\?) docs \(.+\)$/);
    }
    assert.doesNotMatch(r.stderr, /[\r\x1b]/, 'no carriage returns or escape sequences on a non-TTY');
    assert.match(progress.at(-1)!, /^sync done: up 2\/2 docs/);
  });

  it('a second device with the same uuid and passphrase sees the documents after sync', async () => {
    ok(await sol('phone', ['init', ...connect()]), 'init phone');
    const stats = json<{ ok: boolean; docsReceived: number }>(ok(await sol('phone', ['sync', '--json']), 'sync phone'));
    assert.equal(stats.ok, true);
    assert.equal(stats.docsReceived, 2);
    const list = json<{ docs: DocJson[] }>(ok(await sol('phone', ['doc', 'list', '--json']), 'list phone'));
    assert.deepEqual(
      Object.fromEntries(list.docs.map((d) => [d.id, d.content])),
      { [ids.hello!]: { subject: 'Hello', tags: ['inbox'] }, 'note-1': { subject: 'hi from stdin' } },
    );
  });

  it('blob round trip between devices, with transfer progress as plain lines', async () => {
    const file = join(configDir, 'photo.bin');
    const data = randomBytes(1_500_000);
    writeFileSync(file, data);
    const put = ok(await sol('laptop', ['blob', 'put', file, '--id', 'photo-1']), 'blob put');
    assert.equal(put.stdout, 'photo-1\n');
    const progress = lines(put.stderr).filter((l) => l.startsWith('upload '));
    assert.match(progress[0]!, /^upload photo-1: 0 B \/ 1\.4 MiB \(0%\)$/);
    assert.match(progress.at(-1)!, /^upload photo-1: 1\.4 MiB \/ 1\.4 MiB \(100%\)$/);
    assert.doesNotMatch(put.stderr, /[\r\x1b]/);

    assert.deepEqual(json<string[]>(ok(await sol('phone', ['blob', 'list', '--json']), 'blob list')), ['photo-1']);
    const out = join(configDir, 'photo-copy.bin');
    const got = ok(await sol('phone', ['blob', 'get', 'photo-1', '-o', out]), 'blob get');
    assert.match(got.stderr, /^download photo-1: 1\.4 MiB \/ 1\.4 MiB \(100%\)$/m);
    assert.ok(readFileSync(out).equals(data), 'the blob arrives intact');
    assert.equal(statSync(out).mode & 0o777, 0o600, 'decrypted output is private');
    const local = json<Array<{ id: string; status: string }>>(ok(await sol('phone', ['blob', 'list', '--local', '--json']), 'list --local'));
    assert.deepEqual(local.map((b) => [b.id, b.status]), [['photo-1', 'SYNCED']]);

    ok(await sol('phone', ['blob', 'flags', 'photo-1', '--set', 'PROCESSED']), 'flags --set');
    assert.deepEqual(json<{ flags: string[] }>(ok(await sol('laptop', ['blob', 'flags', 'photo-1', '--json']), 'flags')).flags, ['PROCESSED']);
    const again = await sol('laptop', ['blob', 'put', file, '--id', 'photo-1']);
    assert.equal(again.code, 1);
    assert.match(lines(again.stderr).at(-1)!, /^BlobAlreadyExistsError: .+ — /);

    ok(await sol('laptop', ['doc', 'create', '{"subject":"with a scan"}', '--id', 'scan-doc']), 'create scan-doc');
    const attached = ok(await sol('laptop', ['attach', 'put', 'scan-doc', file, '--json']), 'attach put');
    const blobId = (JSON.parse(attached.stdout) as { blobId: string }).blobId;
    ok(await sol('laptop', ['sync']), 'sync laptop');
    ok(await sol('phone', ['sync']), 'sync phone');
    const scan = join(configDir, 'scan-copy.bin');
    const fetched = ok(await sol('phone', ['attach', 'get', 'scan-doc', scan]), 'attach get');
    assert.match(fetched.stderr, new RegExp(`^download ${blobId}: .*\\(100%\\)$`, 'm'));
    assert.ok(readFileSync(scan).equals(data), 'the attachment arrives intact');

    ok(await sol('laptop', ['blob', 'delete', 'photo-1']), 'blob delete');
    assert.deepEqual(json<string[]>(ok(await sol('phone', ['blob', 'list', '--json']), 'list after delete')), [blobId]);
    ok(await sol('laptop', ['doc', 'delete', 'scan-doc']), 'delete scan-doc');
    ok(await sol('laptop', ['sync']), 'sync laptop');
    ok(await sol('phone', ['sync']), 'sync phone');
  });

  it('a conflict shows up on one device and is resolved from the command line', async () => {
    ok(await sol('laptop', ['doc', 'put', 'note-1', '{"subject":"laptop edit"}']), 'put laptop');
    ok(await sol('phone', ['doc', 'put', 'note-1', '{"subject":"phone edit"}']), 'put phone');
    ok(await sol('laptop', ['sync']), 'sync laptop');
    const phoneSync = json<{ docsConflicted: number }>(ok(await sol('phone', ['sync', '--json']), 'sync phone'));
    assert.equal(phoneSync.docsConflicted, 1);
    const versions = json<DocJson[]>(ok(await sol('phone', ['doc', 'conflicts', 'note-1', '--json']), 'conflicts'));
    assert.equal(versions.length, 2);
    assert.deepEqual(versions.map((v) => v.content?.['subject']).sort(), ['laptop edit', 'phone edit']);

    const blocked = await sol('phone', ['doc', 'put', 'note-1', '{"subject":"x"}']);
    assert.equal(blocked.code, 1);
    assertOneErrorLine(blocked, 'ConflictedDocError');

    const resolved = json<DocJson>(ok(await sol('phone', ['doc', 'resolve', 'note-1', '{"subject":"merged"}', '--json']), 'resolve'));
    assert.equal(resolved.hasConflicts, false);
    ok(await sol('phone', ['sync']), 'sync phone');
    ok(await sol('laptop', ['sync']), 'sync laptop');
    const onLaptop = json<DocJson>(ok(await sol('laptop', ['doc', 'get', 'note-1', '--json']), 'get laptop'));
    assert.deepEqual(onLaptop.content, { subject: 'merged' });
    assert.equal(onLaptop.hasConflicts, false);
  });

  it('a recovery code restores the secrets on a fresh profile with a new passphrase', async () => {
    const { recoveryCode } = json<{ recoveryCode: string }>(ok(await sol('laptop', ['recovery-code', 'create', '--json']), 'code'));
    assert.ok(recoveryCode.length >= 16);
    ok(await sol('tablet', ['recover', ...connect(), '--code', recoveryCode], { passphrase: 'a brand new passphrase' }), 'recover');
    ok(await sol('tablet', ['sync'], { passphrase: 'a brand new passphrase' }), 'sync tablet');
    const got = json<DocJson>(ok(await sol('tablet', ['doc', 'get', ids.hello!, '--json'], { passphrase: 'a brand new passphrase' }), 'get tablet'));
    assert.deepEqual(got.content, { subject: 'Hello', tags: ['inbox'] });

    const wrongCode = await sol('desk', ['recover', ...connect(), '--code', 'abcdefghijklmnopqrstuvwx'], { passphrase: 'x' });
    assert.equal(wrongCode.code, 1);
    assert.match(wrongCode.stderr, /^(SecretsNotFoundError|WrongPassphraseError): /);
    assert.throws(() => statSync(join(configDir, 'desk')), /ENOENT/, 'a failed recover leaves no profile behind');
  });

  it('passphrase change: the old one stops working, the new one works', async () => {
    ok(await sol('tablet', ['passphrase', 'change'], { passphrase: 'a brand new passphrase', env: { SOLEDAD_NEW_PASSPHRASE: 'newer still' } }), 'change');
    const old = await sol('tablet', ['doc', 'list'], { passphrase: 'a brand new passphrase' });
    assert.equal(old.code, 1);
    assertOneErrorLine(old, 'WrongPassphraseError');
    ok(await sol('tablet', ['doc', 'list'], { passphrase: 'newer still' }), 'list with the new passphrase');
  });

  it('status reports the server, the last sync, counts and the quota', async () => {
    const s = json<{
      reachable: boolean; serverVersion?: string; lastSync: { ok: boolean } | null; localGeneration: number;
      docs: number; conflicts: number; quota: { used: number; limit: number } | null;
      pendingBlobs: { upload: number; download: number };
    }>(ok(await sol('laptop', ['status', '--json']), 'status'));
    assert.deepEqual(s.pendingBlobs, { upload: 0, download: 0 });
    assert.equal(s.reachable, true);
    assert.equal(typeof s.serverVersion, 'string');
    assert.equal(s.lastSync?.ok, true);
    assert.equal(s.docs, 2);
    assert.equal(s.conflicts, 0);
    assert.ok(s.localGeneration >= 3);
    assert.ok(s.quota !== null && s.quota.used > 0 && s.quota.limit > s.quota.used, 'quota from GET /quota/<uuid>');
    const text = ok(await sol('laptop', ['status']), 'status text');
    assert.match(text.stdout, /^server: .* reachable/m);
    assert.match(text.stdout, /^documents:\s+2$/m);
  });

  it('a wrong passphrase prints one line naming the error, exits 1, and shows a stack only with --debug', async () => {
    const r = await sol('laptop', ['doc', 'list'], { passphrase: 'not the passphrase' });
    assert.equal(r.code, 1);
    assertOneErrorLine(r, 'WrongPassphraseError');
    assert.match(r.stderr, /soledad recover/);
    assert.equal(r.stdout, '');

    const asJson = await sol('laptop', ['doc', 'list', '--json'], { passphrase: 'not the passphrase' });
    assert.equal(asJson.code, 1);
    assert.deepEqual(Object.keys(JSON.parse(asJson.stderr) as object).slice(0, 2), ['error', 'code']);

    const debug = await sol('laptop', ['doc', 'list', '--debug'], { passphrase: 'not the passphrase' });
    assert.equal(debug.code, 1);
    assert.match(debug.stderr, /^\s+at /m, '--debug shows the stack');
  });

  it('usage errors exit 2 with one line; runtime errors exit 1', async () => {
    const unknown = await sol('laptop', ['doc', 'list', '--no-such-option']);
    assert.equal(unknown.code, 2);
    assertOneErrorLine(unknown, 'UsageError');

    const missingArg = await sol('laptop', ['doc', 'get']);
    assert.equal(missingArg.code, 2);
    assertOneErrorLine(missingArg, 'UsageError');

    const noProfile = await sol('nobody', ['doc', 'list']);
    assert.equal(noProfile.code, 1);
    assertOneErrorLine(noProfile, 'ProfileNotFoundError');

    const badJson = await sol('laptop', ['doc', 'create', '[1,2]']);
    assert.equal(badJson.code, 1);
    assertOneErrorLine(badJson, 'InvalidJSONError');

    const missing = await sol('laptop', ['doc', 'get', 'no-such-doc']);
    assert.equal(missing.code, 1);
    assertOneErrorLine(missing, 'DocumentDoesNotExistError');

    const noPassphrase = await runSoledad(['--profile', 'laptop', 'doc', 'list'], { env: { SOLEDAD_CONFIG_DIR: configDir } });
    assert.equal(noPassphrase.code, 2, 'no passphrase and no terminal');
    assertOneErrorLine(noPassphrase, 'UsageError');
    assert.match(noPassphrase.stderr, /SOLEDAD_PASSPHRASE/);
  });

  it('an unreachable server is a ConnectionError line; local commands keep working offline', async () => {
    const dead = ['--server', 'https://127.0.0.1:9/', '--uuid', uuid, '--token', token];
    const fresh = await sol('offline', ['init', ...dead]);
    assert.equal(fresh.code, 1, `init of a new profile needs the server:\n${fresh.stderr}`);
    assertOneErrorLine(fresh, 'ConnectionError');
    assert.throws(() => statSync(join(configDir, 'offline')), /ENOENT/, 'a failed init leaves no profile behind');

    // An existing profile pointed at a dead server: its secrets are local, so documents still work.
    ok(await sol('phone', ['init', '--force', ...dead]), 'init --force');
    ok(await sol('phone', ['doc', 'create', '{"subject":"written offline"}']), 'offline create');
    const failed = await sol('phone', ['sync']);
    assert.equal(failed.code, 1);
    assert.match(lines(failed.stderr).at(-1)!, /^ConnectionError: .+ — .+/);
    const status = json<{ reachable: boolean; quota: unknown; lastSync: { ok: boolean; error?: string } }>(
      ok(await sol('phone', ['status', '--json']), 'status offline'));
    assert.equal(status.reachable, false);
    assert.equal(status.quota, null);
    assert.deepEqual([status.lastSync.ok, status.lastSync.error], [false, 'ConnectionError']);
  });
});
