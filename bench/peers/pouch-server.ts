/**
 * The side-by-side peer's server: a CouchDB-protocol server (express-pouchdb, the core of pouchdb-server) on
 * PouchDB's LevelDB adapter, over HTTPS on loopback like ours. Run as its own process so its memory is its own:
 * `node --import tsx bench/peers/pouch-server.ts <dataDir> <certFile> <keyFile>`; prints `listening <port>`.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
// CommonJS packages without types: typed here as just what is used.
const PouchDB = require('pouchdb') as { defaults(opts: Record<string, unknown>): unknown };
const expressPouchDB = require('express-pouchdb') as (db: unknown, opts: Record<string, unknown>) => import('node:http').RequestListener;

const [dataDir, certFile, keyFile] = process.argv.slice(2);
if (dataDir === undefined || certFile === undefined || keyFile === undefined) {
  console.error('usage: pouch-server.ts <dataDir> <certFile> <keyFile>');
  process.exit(2);
}
mkdirSync(join(dataDir, 'db'), { recursive: true });
process.chdir(dataDir);
const app = expressPouchDB(PouchDB.defaults({ prefix: `${join(dataDir, 'db')}/` }), {
  mode: 'minimumForPouchDB',
  configPath: join(dataDir, 'config.json'),
  logPath: join(dataDir, 'log.txt'),
});
const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, app);
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(`listening ${typeof address === 'object' && address !== null ? address.port : 0}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
