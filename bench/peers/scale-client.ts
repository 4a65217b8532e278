/**
 * One process of the scale scenario's clients: several users, each with its own encrypted local database,
 * HTTP client (its own TLS connections) and synchronizer, all syncing at once when the parent says go.
 * Driven over IPC by bench/scale.ts: `setup` → `ready`, `go` → `done` with each sync's latency and the errors.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { LocalDatabase } from '../../src/client/db/database.js';
import { HttpClient } from '../../src/client/http/client.js';
import { Synchronizer } from '../../src/client/sync/synchronizer.js';

/** What the parent sends first. */
export interface ScaleSetup {
  type: 'setup';
  serverUrl: string;
  certFile: string;
  work: string;
  users: Array<{ uuid: string; token: string }>;
  docs: number;
  size: number;
}

/** What this process answers once the syncs are over. */
export interface ScaleDone {
  type: 'done';
  latenciesMs: number[];
  errors: string[];
}

interface Client {
  db: LocalDatabase;
  http: HttpClient;
  sync: Synchronizer;
}

const clients: Client[] = [];

function prepare(setup: ScaleSetup): void {
  const body = randomBytes(Math.ceil((setup.size * 3) / 4) + 3).toString('base64').slice(0, setup.size);
  for (const { uuid, token } of setup.users) {
    const db = LocalDatabase.open({ path: join(setup.work, `${uuid}.u1db`), encryption: { mode: 'encrypted', key: randomBytes(32) } });
    db.transaction(() => {
      for (let i = 0; i < setup.docs; i++) db.createDoc({ body, i });
    });
    const http = new HttpClient({ serverUrl: setup.serverUrl, certFile: setup.certFile, uuid, token });
    clients.push({ db, http, sync: new Synchronizer({ db, http, uuid, remoteSecret: randomBytes(512) }) });
  }
}

async function go(): Promise<ScaleDone> {
  const t0 = performance.now();
  const latenciesMs: number[] = [];
  const errors: string[] = [];
  await Promise.all(clients.map(async (c) => {
    try {
      await c.sync.sync();
      latenciesMs.push(performance.now() - t0);
    } catch (err) {
      errors.push(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    }
  }));
  return { type: 'done', latenciesMs, errors };
}

process.on('message', (msg: { type: string }) => {
  void (async () => {
    if (msg.type === 'setup') {
      prepare(msg as ScaleSetup);
      process.send!({ type: 'ready' });
    } else if (msg.type === 'go') {
      const done = await go();
      for (const c of clients) {
        c.db.close();
        await c.http.close();
      }
      process.send!(done, () => process.exit(0));
    }
  })().catch((err: unknown) => {
    process.send!({ type: 'done', latenciesMs: [], errors: [`client process: ${String(err)}`] }, () => process.exit(1));
  });
});
