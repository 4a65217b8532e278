/**
 * Devices of one user against a server process: an encrypted local replica with its synchronizer, and a blob
 * manager, each with fast retries so that a campaign of faults stays short.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { LocalDatabase } from '../../src/client/db/database.js';
import { HttpClient } from '../../src/client/http/client.js';
import { Synchronizer, type SyncPhase } from '../../src/client/sync/synchronizer.js';
import { BlobManager } from '../../src/client/blobs/blob-manager.js';

/** The secrets every device of the user shares. */
export interface Account {
  uuid: string;
  token: string;
  remoteSecret: Buffer;
}

/** A new account on a server (token minted by `mint`). */
export async function account(mint: (uuid: string) => Promise<string>): Promise<Account> {
  const uuid = randomBytes(16).toString('hex');
  return { uuid, token: await mint(uuid), remoteSecret: randomBytes(512) };
}

/** A device's document replica. */
export interface DocDevice {
  readonly name: string;
  readonly path: string;
  readonly key: Buffer;
  db: LocalDatabase;
  http: HttpClient;
  sync: Synchronizer;
  /** The phase of the sync running now, or `null`. */
  phase(): SyncPhase | null;
  close(): Promise<void>;
}

/** Open (or reopen) a device's replica under `dir`. */
export function docDevice(name: string, dir: string, url: string, certFile: string, acc: Account, key = randomBytes(32),
  http: Partial<ConstructorParameters<typeof HttpClient>[0]> = {}): DocDevice {
  const path = join(dir, `${name}.u1db`);
  const db = LocalDatabase.open({ path, encryption: { mode: 'encrypted', key } });
  const client = new HttpClient({
    serverUrl: url, certFile, uuid: acc.uuid, token: acc.token, retryDelaysMs: [], connectTimeoutMs: 2_000,
    headersTimeoutMs: 20_000, bodyTimeoutMs: 20_000, ...http,
  });
  const sync = new Synchronizer({ db, http: client, uuid: acc.uuid, remoteSecret: acc.remoteSecret, maxBatchDocs: 7 });
  let phase: SyncPhase | null = null;
  sync.on('progress', (p) => {
    phase = p.phase === 'done' || p.phase === 'failed' ? null : p.phase;
  });
  return {
    name, path, key, db, http: client, sync,
    phase: () => phase,
    async close() {
      await client.destroy();
      db.close();
    },
  };
}

/** A device's blob manager. */
export interface BlobDevice {
  readonly name: string;
  readonly path: string;
  readonly key: Buffer;
  blobs: BlobManager;
  http: HttpClient;
  close(): Promise<void>;
}

/** Open (or reopen) a device's blob manager under `dir`, retrying fast and long. */
export function blobDevice(name: string, dir: string, url: string, certFile: string, acc: Account, key = randomBytes(32)): BlobDevice {
  const path = join(dir, `${name}_blobs.db`);
  const http = new HttpClient({
    serverUrl: url, certFile, uuid: acc.uuid, token: acc.token, retryDelaysMs: [], connectTimeoutMs: 2_000,
    headersTimeoutMs: 20_000, bodyTimeoutMs: 20_000,
  });
  const blobs = BlobManager.open({
    uuid: acc.uuid, localPath: path, localKey: key, remoteSecret: acc.remoteSecret, http,
    retrySchedule: () => 100, maxTransferAttempts: 400,
  });
  return {
    name, path, key, blobs, http,
    async close() {
      await blobs.close();
      await http.destroy();
    },
  };
}
