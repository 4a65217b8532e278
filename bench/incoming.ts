/**
 * Incoming box scenarios against a real `soledad-server` process (issue 6):
 * - deliveries/s on the Services API (a trusted app putting 4 KiB payloads, 16 at a time), side by side with the
 *   owner's own blob uploads of the same size over the Users API in the same run;
 * - messages/s processed end to end (list → reserve → download → decrypt (RSA-OAEP + AES-GCM, the example's
 *   scheme) → save a document → sync → confirm), by one replica and by two replicas sharing the work.
 */
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deliver, encryptForRecipient, mailConsumer } from '../examples/mx-delivery.js';
import { HttpClient } from '../src/client/http/client.js';
import { IncomingBox } from '../src/client/incoming/incoming-box.js';
import { Soledad } from '../src/index.js';
import { startServerProcess, type ServerProcess } from '../test/e2e/server-process.js';
import type { ScenarioResult } from './report.js';

async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/**
 * Run the incoming scenarios.
 *
 * @example
 * results.push(...(await runIncomingScenarios(quick)));
 */
export async function runIncomingScenarios(quick: boolean): Promise<ScenarioResult[]> {
  const deliveries = quick ? 300 : 3000;
  const messages = quick ? 100 : 1000;
  const size = 4 * 1024;
  const results: ScenarioResult[] = [];
  const work = mkdtempSync(join(tmpdir(), 'soledad-bench-incoming-'));
  const serviceToken = randomBytes(18).toString('base64url');
  writeFileSync(join(work, 'services.tokens'), `mx:${serviceToken}\n`);
  let server: ServerProcess | undefined;
  const closers: Array<() => Promise<void>> = [];
  try {
    server = await startServerProcess(`services_tokens_file = ${join(work, 'services.tokens')}\nquota_bytes = 4GiB\n`);
    const target = { servicesUrl: server.servicesUrl, service: 'mx', token: serviceToken };
    const srv = server;
    const user = async () => {
      const uuid = randomUUID().replace(/-/g, '');
      return { uuid, token: await srv.token(uuid) };
    };

    // ---- deliveries/s, and the owner's own uploads of the same bytes ----
    const u1 = await user();
    const payload = randomBytes(size);
    const ids = Array.from({ length: deliveries }, (_, i) => `d${i}`);
    const http = new HttpClient({ serverUrl: server.url, certFile: server.certFile, uuid: u1.uuid, token: u1.token });
    closers.push(() => http.close());
    // Warm both paths up first (JIT, connections, the user's first quota measurement), so that neither pays for it.
    const warm = Array.from({ length: 200 }, (_, i) => `w${i}`);
    await pool(warm, 16, async (id) => {
      await deliver(target, u1.uuid, id, payload);
      await (await http.request({ method: 'PUT', path: `/blobs/${u1.uuid}/${id}`, body: payload, headers: { 'content-length': String(size) } })).dump();
    });
    let failures = 0;
    const t0 = performance.now();
    await pool(ids, 16, async (id) => {
      if ((await deliver(target, u1.uuid, id, payload)).status !== 200) failures += 1;
    });
    const deliverMs = performance.now() - t0;
    const t1 = performance.now();
    await pool(ids, 16, async (id) => {
      const res = await http.request({ method: 'PUT', path: `/blobs/${u1.uuid}/own-${id}`, body: payload, headers: { 'content-length': String(size) } });
      await res.dump();
    });
    const ownMs = performance.now() - t1;
    const rate = (n: number, ms: number): string => (n / (ms / 1000)).toFixed(0);
    results.push({
      name: `incoming: ${deliveries} deliveries × 4 KiB on the Services API (16 at a time)`,
      ours_ms: deliverMs,
      baseline_name: 'owner blob PUTs, same bytes, Users API over TLS',
      baseline_ms: ownMs,
      extra: { 'deliveries/s': rate(deliveries, deliverMs), 'baseline_puts/s': rate(deliveries, ownMs) },
      checks: [{ what: 'every delivery accepted', ok: failures === 0 }],
    });

    // ---- messages/s end to end ----
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    for (const replicas of [1, 2]) {
      const u = await user();
      const mails = Array.from({ length: messages }, (_, i) => ({
        id: `m${String(i).padStart(5, '0')}`,
        payload: encryptForRecipient(publicKey, Buffer.from(`From: a@example.org\nSubject: message ${i}\n\n${'lorem ipsum '.repeat(80)}\n`)),
      }));
      await pool(mails, 16, async (m) => {
        if ((await deliver(target, u.uuid, m.id, m.payload)).status !== 200) throw new Error('delivery refused');
      });
      const boxes: IncomingBox[] = [];
      for (let r = 0; r < replicas; r++) {
        const dir = join(work, `${u.uuid}-${r}`);
        const sol = await Soledad.open({
          uuid: u.uuid, passphrase: 'bench passphrase', secretsPath: join(dir, 'soledad.json'), localDbPath: join(dir, 'soledad.u1db'),
          serverUrl: server.url, certFile: server.certFile, authToken: u.token,
        });
        const h = new HttpClient({ serverUrl: server.url, certFile: server.certFile, uuid: u.uuid, token: u.token });
        const box = new IncomingBox({ http: h, uuid: u.uuid, replicaId: sol.replicaUid, syncDocuments: () => sol.sync() });
        box.register(mailConsumer(sol, privateKey), { namespace: 'MX' });
        boxes.push(box);
        closers.push(async () => {
          await box.close();
          await sol.close();
          await h.close();
        });
      }
      const t2 = performance.now();
      const counts = await Promise.all(boxes.map(async (box) => {
        let n = 0;
        for (;;) {
          const s = await box.processOnce();
          n += s.processed.length;
          if (s.processed.length === 0 && s.skipped.length === 0 && (await box.pendingCount()) === 0) return n;
        }
      }));
      const ms = performance.now() - t2;
      const total = counts.reduce((a, b) => a + b, 0);
      results.push({
        name: `incoming: ${messages} messages processed end to end, ${replicas} replica${replicas > 1 ? 's' : ''}`,
        ours_ms: ms,
        extra: { 'messages/s': rate(messages, ms), ...(replicas > 1 ? { split: counts.join('/') } : {}) },
        checks: [{ what: 'each message processed exactly once', ok: total === messages }],
      });
    }
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return results;
}
