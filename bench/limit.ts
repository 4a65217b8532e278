/**
 * The physical limit of a scenario on this machine, measured in the same run: AES-256-GCM over all its bytes
 * (one message per document, as documents are encrypted), SQLite writing all of them (one transaction, a
 * prepared insert, WAL, on disk) and a loopback TLS transfer of all of them to another process. Our time is
 * printed as a multiple of their sum.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import Database from 'better-sqlite3-multiple-ciphers';
import { spawnPeer, type Peer } from './peers/spawn.js';
import { medianBy } from './util.js';

/** The three parts of the limit and their sum, in ms; and what SQLCipher needs for the same writes (not in the sum). */
export interface Limit {
  aes_ms: number;
  sqlite_ms: number;
  tls_ms: number;
  sum_ms: number;
  /**
   * The same writes into a SQLCipher 4 file (the client's cipher settings) through a rollback journal, the
   * cheapest way to encrypt each page once: the floor of a download's local writes on an encrypted device.
   */
  sqlcipher_ms: number;
}

/** Measures limits; holds a TLS sink process between scenarios. */
export class PhysicalLimit {
  private constructor(private readonly sink: Peer, private readonly ca: Buffer) {}

  /** Start the TLS sink with the given certificate (the one our server uses, so TLS parameters match). */
  static async start(certFile: string, keyFile: string): Promise<PhysicalLimit> {
    const sink = await spawnPeer(join(import.meta.dirname, 'peers', 'tls-sink.ts'), [certFile, keyFile]);
    return new PhysicalLimit(sink, readFileSync(certFile));
  }

  /**
   * The limit for documents of these sizes: the median of `repeat` runs of each part, the same statistic as the
   * scenarios it is compared with (the median of their rounds).
   */
  async measure(sizes: readonly number[], repeat = 3): Promise<Limit> {
    const docs = sizes.map((n) => randomBytes(n));
    const total = sizes.reduce((a, b) => a + b, 0);
    const runs: Array<Omit<Limit, 'sum_ms'>> = [];
    for (let i = 0; i < repeat; i++) {
      runs.push({
        aes_ms: aesOver(docs),
        sqlite_ms: sqliteWrite(docs, false),
        tls_ms: await this.tlsTransfer(total),
        sqlcipher_ms: sqliteWrite(docs, true),
      });
    }
    const median = (pick: (r: Omit<Limit, 'sum_ms'>) => number): number => pick(medianBy(runs, pick));
    const aes = median((r) => r.aes_ms);
    const sqlite = median((r) => r.sqlite_ms);
    const tls = median((r) => r.tls_ms);
    return { aes_ms: aes, sqlite_ms: sqlite, tls_ms: tls, sum_ms: aes + sqlite + tls, sqlcipher_ms: median((r) => r.sqlcipher_ms) };
  }

  /** Connect, send `total` bytes, wait for the sink's acknowledgement; ms including the handshake. */
  private async tlsTransfer(total: number): Promise<number> {
    const block = randomBytes(64 * 1024);
    const t0 = performance.now();
    const socket = connect({ host: '127.0.0.1', port: this.sink.port, ca: [this.ca], servername: 'localhost' });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    const acked = new Promise<void>((resolve, reject) => {
      socket.once('data', () => resolve());
      socket.once('error', reject);
    });
    const head = Buffer.alloc(8);
    head.writeBigUInt64BE(BigInt(total));
    socket.write(head);
    for (let sent = 0; sent < total; sent += block.length) {
      const part = block.subarray(0, Math.min(block.length, total - sent));
      // The sink may answer and close as soon as the last bytes arrive, before 'drain' is emitted: either will do.
      if (!socket.write(part)) await Promise.race([once(socket, 'drain'), acked]);
    }
    await acked;
    const elapsed = performance.now() - t0;
    socket.destroy();
    return elapsed;
  }

  async stop(): Promise<void> {
    await this.sink.stop();
  }
}

function aesOver(docs: readonly Buffer[]): number {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const t0 = performance.now();
  for (const doc of docs) {
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.update(doc);
    cipher.final();
    cipher.getAuthTag();
  }
  return performance.now() - t0;
}

function sqliteWrite(docs: readonly Buffer[], encrypted: boolean): number {
  const dir = mkdtempSync(join(tmpdir(), 'soledad-bench-limit-'));
  try {
    const db = new Database(join(dir, 'limit.db'));
    if (encrypted) {
      db.pragma("cipher = 'sqlcipher'");
      db.pragma('legacy = 4');
      db.pragma(`key = "x'${randomBytes(32).toString('hex')}'"`);
    }
    // The cheapest way for each: plain SQLite appends to a WAL; SQLCipher writes each page once through a rollback
    // journal (in WAL mode every page would be encrypted again at the checkpoint).
    db.pragma(`journal_mode = ${encrypted ? 'DELETE' : 'WAL'}`);
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE docs (id INTEGER PRIMARY KEY, content BLOB NOT NULL)');
    const insert = db.prepare('INSERT INTO docs (id, content) VALUES (?, ?)');
    const t0 = performance.now();
    db.transaction(() => {
      docs.forEach((doc, i) => insert.run(i, doc));
    })();
    const elapsed = performance.now() - t0;
    db.close();
    return elapsed;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
