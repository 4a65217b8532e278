/** The command-line tools, run as an operator would (a child process per command). */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import { buildUsersApp } from '../../src/server/app.js';
import { generateToken } from '../../src/server/backends/common.js';
import { openSqliteBackend } from '../../src/server/backends/sqlite/index.js';
import { SERVER_VERSION } from '../../src/server/version.js';

const SERVER_CLI = fileURLToPath(new URL('../../src/cli/soledad-server.ts', import.meta.url));
const CREATE_CLI = fileURLToPath(new URL('../../src/cli/soledad-create-userdb.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
const UUID = 'c11000000000000000000000000000aa';

interface Run { code: number | null; stdout: string; stderr: string }

function run(cli: string, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', TSX, cli, ...args], { env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr }));
  });
}

describe('soledad-server CLI', () => {
  let dir: string;
  let env: Record<string, string>;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'soledad-cli-'));
    env = { SOLEDAD_DATA_DIR: dir, SOLEDAD_SERVER_CONFIG_FILE: join(dir, 'none.conf') };
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('--help describes the commands and exits 0', async () => {
    const r = await run(SERVER_CLI, ['--help'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Usage: soledad-server/);
    assert.match(r.stdout, /token/);
    assert.match(r.stdout, /HTTPS_PORT/);
    const tokenHelp = await run(SERVER_CLI, ['token', 'add', '--help'], env);
    assert.match(tokenHelp.stdout, /--uuid <uuid>/);
    assert.match(tokenHelp.stdout, /--expires <duration>/);
  });

  it('--version prints the version', async () => {
    for (const flag of ['--version', '-v']) {
      const r = await run(SERVER_CLI, [flag], env);
      assert.equal(r.code, 0);
      assert.equal(r.stdout.trim(), SERVER_VERSION);
    }
  });

  it('refuses to start on a bad configuration: exit 2, one line naming the key', async () => {
    const conf = join(dir, 'bad.conf');
    await writeFile(conf, '[soledad-server]\nbatching = perhaps\n');
    let r = await run(SERVER_CLI, [], { ...env, SOLEDAD_SERVER_CONFIG_FILE: conf });
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /^soledad-server: batching: /);
    r = await run(SERVER_CLI, ['start'], { ...env, HTTPS_PORT: 'https' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^soledad-server: HTTPS_PORT: /);
  });

  it('token add prints a token that then authenticates; list shows only hashes; revoke removes it', async () => {
    const add = await run(SERVER_CLI, ['token', 'add', '--uuid', UUID, '--expires', '30d'], env);
    assert.equal(add.code, 0, add.stderr);
    const token = add.stdout.trim();
    assert.match(token, /^[A-Za-z0-9_-]{40,}$/);
    assert.match(add.stderr, /valid until/);

    const list = await run(SERVER_CLI, ['token', 'list'], env);
    assert.equal(list.code, 0);
    const hash = createHash('sha512').update(token).digest('hex');
    assert.ok(list.stdout.includes(hash) && list.stdout.includes(UUID));
    assert.ok(!list.stdout.includes(token));

    const backend = await openSqliteBackend({ dataDir: dir });
    const app = buildUsersApp({ config: { blobs: false, createCmd: null, quotaBytes: 1e9 }, backend });
    try {
      const ok = await app.inject({ method: 'GET', url: '/shared', headers: { authorization: encodeTokenAuthorization(UUID, token) } });
      assert.equal(ok.statusCode, 200);
      const revoke = await run(SERVER_CLI, ['token', 'revoke', hash], env);
      assert.equal(revoke.code, 0, revoke.stderr);
      const gone = await app.inject({ method: 'GET', url: '/shared', headers: { authorization: encodeTokenAuthorization(UUID, token) } });
      assert.equal(gone.statusCode, 401);
      const again = await run(SERVER_CLI, ['token', 'revoke', token], env);
      assert.equal(again.code, 1);
    } finally {
      await app.close();
      await backend.close();
    }
  });

  it('token revoke takes a token beginning with "-" as the token, not as an unknown option', async () => {
    const r = await run(SERVER_CLI, ['token', 'revoke', `-${'A'.repeat(42)}`], env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /no such token/);
  });

  it('new tokens never begin with "-"', () => {
    // A random base64url token begins with "-" one time in 64: 5000 draws would show it.
    for (let i = 0; i < 5000; i++) assert.ok(!generateToken().startsWith('-'));
  });

  it('token add refuses bad arguments with exit 2', async () => {
    for (const args of [['token', 'add', '--uuid', 'a/b'], ['token', 'add', '--uuid', UUID, '--expires', '3 fortnights'], ['token', 'add'], ['nonsense']]) {
      const r = await run(SERVER_CLI, args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
  });

  it('starts, prints both URLs and the token command, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', TSX, SERVER_CLI], {
      env: { ...process.env, ...env, HTTPS_PORT: '0', LOCAL_SERVICES_PORT: '0', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (!/token add --uuid/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.match(out, /Users API: +https:\/\/localhost:\d+\//);
    assert.match(out, /Services API: http:\/\/127\.0\.0\.1:\d+\//);
    assert.match(out, /SHA-256 fingerprint: ([0-9A-F]{2}:){31}[0-9A-F]{2}/);
    assert.ok(out.includes(`SOLEDAD_DATA_DIR=${dir}`));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});

describe('soledad-create-userdb', () => {
  it('creates a user database in the configured backend, idempotently; refuses bad names', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'soledad-cli-'));
    const env = { SOLEDAD_DATA_DIR: dir, SOLEDAD_SERVER_CONFIG_FILE: join(dir, 'none.conf') };
    try {
      let r = await run(CREATE_CLI, [`user-${UUID}`], env);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /created/);
      r = await run(CREATE_CLI, [`user-${UUID}`], env);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /already exists/);
      const backend = await openSqliteBackend({ dataDir: dir });
      assert.equal(await backend.documents.databaseExists(`user-${UUID}`), true);
      await backend.close();
      r = await run(CREATE_CLI, ['shared'], env);
      assert.equal(r.code, 2);
      r = await run(CREATE_CLI, ['--help'], env);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /dbname/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
