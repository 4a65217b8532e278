/**
 * A client in its own process, for the client-crash tests: it syncs documents or transfers blobs and prints its
 * progress as JSON lines on stdout, so that the test can SIGKILL it at a chosen point. Arguments: one JSON object.
 */
import { LocalDatabase } from '../../src/client/db/database.js';
import { HttpClient } from '../../src/client/http/client.js';
import { Synchronizer } from '../../src/client/sync/synchronizer.js';
import { BlobManager } from '../../src/client/blobs/blob-manager.js';

interface Job {
  mode: 'sync' | 'blob-download' | 'blob-upload';
  path: string;
  keyHex: string;
  url: string;
  certFile: string;
  uuid: string;
  token: string;
  remoteSecretHex: string;
  /** blob-upload: put this many random bytes under `blobId`. */
  size?: number;
  blobId?: string;
  /** sync: create this many documents first. */
  createDocs?: number;
}

const job = JSON.parse(process.argv[2]!) as Job;
const out = (o: unknown): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};
const http = new HttpClient({ serverUrl: job.url, certFile: job.certFile, uuid: job.uuid, token: job.token, retryDelaysMs: [] });
const key = Buffer.from(job.keyHex, 'hex');
const remoteSecret = Buffer.from(job.remoteSecretHex, 'hex');

if (job.mode === 'sync') {
  const db = LocalDatabase.open({ path: job.path, encryption: { mode: 'encrypted', key } });
  for (let i = 0; i < (job.createDocs ?? 0); i++) db.createDoc({ i, pad: 'p'.repeat(2000) }, `child-${String(i).padStart(4, '0')}`);
  const sync = new Synchronizer({ db, http, uuid: job.uuid, remoteSecret, maxBatchDocs: 20 });
  sync.on('progress', (p) => out({ phase: p.phase, sent: p.docsSent, received: p.docsReceived }));
  await sync.sync();
  out({ done: true });
} else {
  const blobs = BlobManager.open({ uuid: job.uuid, localPath: job.path, localKey: key, remoteSecret, http, retrySchedule: () => 50 });
  blobs.on('progress', (p) => out({ direction: p.direction, blobId: p.blobId, done: p.bytesDone, total: p.bytesTotal }));
  if (job.mode === 'blob-upload') {
    const { randomBytes } = await import('node:crypto');
    await blobs.put(job.blobId!, randomBytes(job.size!));
  } else {
    await blobs.sync();
  }
  out({ done: true });
}
// Stay alive until killed: the test decides when this process ends.
setInterval(() => undefined, 1000);
