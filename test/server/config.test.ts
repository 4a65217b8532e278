import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/common/errors.js';
import { loadConfig, readConfig } from '../../src/server/config.js';

function configErrorNaming(key: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.ok(err.message.startsWith(`${key}:`), err.message);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  };
}

describe('server configuration', () => {
  it('has the original defaults and ours when there is no file', () => {
    const c = loadConfig({});
    assert.equal(c.configFile, '/etc/soledad/soledad-server.conf');
    assert.equal(c.configFileFound, false);
    assert.equal(c.couchUrl, 'http://localhost:5984');
    assert.equal(c.createCmd, null);
    assert.equal(c.adminNetrc, '/etc/couchdb/couchdb.netrc');
    assert.equal(c.batching, true);
    assert.equal(c.blobs, true);
    assert.equal(c.concurrentBlobWrites, 50);
    assert.equal(c.servicesTokensFile, '/etc/soledad/services.tokens');
    assert.equal(c.httpsPort, 2323);
    assert.equal(c.localServicesPort, 2525);
    assert.equal(c.logToStdout, false);
    assert.equal(c.backend, 'sqlite');
    assert.equal(c.dataDir, './data');
    assert.equal(c.blobsPath, join('./data', 'blobs'));
    assert.equal(c.quotaBytes, 200 * 1024 * 1024);
    assert.equal(c.tlsCertPath, null);
    assert.equal(c.tlsKeyPath, null);
  });

  it('reads the [soledad-server] section', () => {
    const c = loadConfig({ SOLEDAD_SERVER_CONFIG_FILE: '/x.conf' }, `
; comment
[soledad-server]
couch_url = http://couch:5984
create_cmd = sudo -u soledad-admin /usr/bin/soledad-create-userdb
admin_netrc = /etc/n
batching = false
blobs = no
blobs_path = /srv/blobs
concurrent_blob_writes = 7
services_tokens_file = /etc/t
data_dir = /srv/soledad
quota_bytes = 1GiB
tls_cert = /c.pem
tls_key = /k.pem
something_else = 1

[database-security]
members = soledad
`);
    assert.equal(c.configFile, '/x.conf');
    assert.equal(c.configFileFound, true);
    assert.equal(c.couchUrl, 'http://couch:5984');
    assert.equal(c.createCmd, 'sudo -u soledad-admin /usr/bin/soledad-create-userdb');
    assert.equal(c.adminNetrc, '/etc/n');
    assert.equal(c.batching, false);
    assert.equal(c.blobs, false);
    assert.equal(c.blobsPath, '/srv/blobs');
    assert.equal(c.concurrentBlobWrites, 7);
    assert.equal(c.servicesTokensFile, '/etc/t');
    assert.equal(c.dataDir, '/srv/soledad');
    assert.equal(c.quotaBytes, 1024 ** 3);
    assert.equal(c.tlsCertPath, '/c.pem');
    assert.equal(c.tlsKeyPath, '/k.pem');
    assert.deepEqual(c.unknownOptions, ['something_else']);
  });

  it('lets the environment override the file', () => {
    const file = '[soledad-server]\ncouch_url = http://file\ndata_dir = /file\ntls_cert = /fc\ntls_key = /fk\n';
    const c = loadConfig({
      SOLEDAD_COUCH_URL: 'http://env', SOLEDAD_DATA_DIR: '/env', HTTPS_PORT: '8443', LOCAL_SERVICES_PORT: '0',
      SOLEDAD_LOG_TO_STDOUT: '1', CERT_PATH: '/ec', PRIVKEY_PATH: '/ek',
    }, file);
    assert.equal(c.couchUrl, 'http://env');
    assert.equal(c.dataDir, '/env');
    assert.equal(c.blobsPath, join('/env', 'blobs'));
    assert.equal(c.httpsPort, 8443);
    assert.equal(c.localServicesPort, 0);
    assert.equal(c.logToStdout, true);
    assert.equal(c.tlsCertPath, '/ec');
    assert.equal(c.tlsKeyPath, '/ek');
  });

  it('accepts the boolean words of ConfigParser and sizes with units', () => {
    for (const [word, value] of [['TRUE', true], ['yes', true], ['on', true], ['1', true], ['off', false], ['No', false], ['0', false]] as const) {
      assert.equal(loadConfig({}, `[soledad-server]\nbatching = ${word}\n`).batching, value, word);
    }
    assert.equal(loadConfig({}, '[soledad-server]\nquota_bytes = 1000\n').quotaBytes, 1000);
    assert.equal(loadConfig({}, '[soledad-server]\nquota_bytes = 2MB\n').quotaBytes, 2_000_000);
    assert.equal(loadConfig({}, '[soledad-server]\nquota_bytes = 3 MiB\n').quotaBytes, 3 * 1024 * 1024);
  });

  it('names the key of a bad value in a one-line ConfigError', () => {
    const bad: Array<[Record<string, string>, string | undefined, string]> = [
      [{}, '[soledad-server]\nbatching = maybe\n', 'batching'],
      [{}, '[soledad-server]\nblobs = 2\n', 'blobs'],
      [{}, '[soledad-server]\nconcurrent_blob_writes = 0\n', 'concurrent_blob_writes'],
      [{}, '[soledad-server]\nconcurrent_blob_writes = many\n', 'concurrent_blob_writes'],
      [{}, '[soledad-server]\nquota_bytes = lots\n', 'quota_bytes'],
      [{}, '[soledad-server]\nquota_bytes = 5XB\n', 'quota_bytes'],
      [{}, '[soledad-server]\nbackend = mysql\n', 'backend'],
      [{}, '[soledad-server]\ntls_cert = /c.pem\n', 'tls_key (or PRIVKEY_PATH)'],
      [{ PRIVKEY_PATH: '/k' }, undefined, 'tls_cert (or CERT_PATH)'],
      [{ HTTPS_PORT: 'abc' }, undefined, 'HTTPS_PORT'],
      [{ HTTPS_PORT: '70000' }, undefined, 'HTTPS_PORT'],
      [{ LOCAL_SERVICES_PORT: '-1' }, undefined, 'LOCAL_SERVICES_PORT'],
    ];
    for (const [env, text, key] of bad) assert.throws(() => loadConfig(env, text), configErrorNaming(key), key);
  });

  it('reads the file named by SOLEDAD_SERVER_CONFIG_FILE; a missing file means defaults', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'soledad-conf-'));
    try {
      const file = join(dir, 'server.conf');
      await writeFile(file, '[soledad-server]\nquota_bytes = 123\n');
      assert.equal((await readConfig({ SOLEDAD_SERVER_CONFIG_FILE: file })).quotaBytes, 123);
      const missing = await readConfig({ SOLEDAD_SERVER_CONFIG_FILE: join(dir, 'nope.conf') });
      assert.equal(missing.configFileFound, false);
      assert.equal(missing.quotaBytes, 200 * 1024 * 1024);
      await assert.rejects(readConfig({ SOLEDAD_SERVER_CONFIG_FILE: dir }), configErrorNaming('SOLEDAD_SERVER_CONFIG_FILE'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
