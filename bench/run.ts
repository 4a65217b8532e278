/**
 * `npm run bench [-- --quick]`: every figure is measured in the same run as what it is compared with (PouchDB
 * replicating the same data, the physical limit of the same bytes), so a noisy machine still compares fairly.
 * Results: a table, the targets met or not, and bench/results/<date>.json.
 *
 * `--only=local,sync,initial,blobs,incoming,scale,backends` runs a subset (for profiling one part).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { startServerProcess } from '../test/e2e/server-process.js';
import { runBackendScenarios } from './backends.js';
import { runBlobScenarios } from './blobs.js';
import { runIncomingScenarios } from './incoming.js';
import { PhysicalLimit } from './limit.js';
import { runLocalApplyScenario, runLocalDbScenarios } from './local-db.js';
import { report, type ScenarioResult } from './report.js';
import { runScaleScenario } from './scale.js';
import { initialSyncScenario, runSyncScenarios, seedScenarios } from './sync.js';

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(`Usage: npm run bench [-- --quick] [-- --only=local,sync,initial,blobs,incoming,scale,backends]
  --quick  smaller sizes (CI smoke, under two minutes)
  backends: the 1000 × 10 KB sync on sqlite, postgres and couch side by side (uses SOLEDAD_TEST_POSTGRES_URL and
            SOLEDAD_TEST_COUCH_URL when set, else starts them with scripts/test-services.sh)
Writes bench/results/<date>.json.`);
  process.exit(0);
}
const quick = args.includes('--quick');
const only = args.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
const wanted = (part: string): boolean => only === undefined || only.includes(part);

/** A certificate like the server's own (same key type), kept aside for the limit's TLS sink. */
async function certificate(dir: string): Promise<{ certFile: string; keyFile: string }> {
  const server = await startServerProcess();
  try {
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    copyFileSync(server.certFile, certFile);
    copyFileSync(join(server.dataDir, 'tls', 'server.key'), keyFile);
    return { certFile, keyFile };
  } finally {
    await server.stop();
  }
}

// The 1-minute load average when the run started: other work on the machine slows every side alike, but say so.
const loadBefore = loadavg()[0];
const t0 = performance.now();
const results: ScenarioResult[] = [];
const tlsDir = mkdtempSync(join(tmpdir(), 'soledad-bench-cert-'));
let limit: PhysicalLimit | null = null;
/** Run one part if it was asked for, saying on stderr what runs and how long it took (a full run takes minutes). */
async function part(name: string, run: () => Promise<ScenarioResult[]>): Promise<void> {
  if (!wanted(name)) return;
  const started = performance.now();
  console.error(`bench: ${name}…`);
  results.push(...(await run()));
  console.error(`bench: ${name} done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

try {
  const tls = await certificate(tlsDir);
  if (wanted('sync') || wanted('initial')) limit = await PhysicalLimit.start(tls.certFile, tls.keyFile);
  await part('local', async () => [
    ...(await runLocalDbScenarios(quick ? 100 : 1000, 10 * 1024)),
    await runLocalApplyScenario(quick ? 1000 : 10_000, 5 * 1024),
  ]);
  await part('sync', () => runSyncScenarios(seedScenarios(quick ? 0.1 : 1), limit, tls));
  await part('initial', () => runSyncScenarios([initialSyncScenario(quick ? 1000 : 10_000)], limit, tls));
  await part('blobs', () => runBlobScenarios(quick));
  await part('incoming', () => runIncomingScenarios(quick));
  await part('backends', () => runBackendScenarios(quick, tls));
  await part('scale', async () => [await runScaleScenario(quick
    ? { clients: 100, docs: 10, size: 10 * 1024, processes: 4 }
    : { clients: 100, docs: 100, size: 10 * 1024, processes: 4 })]);
} finally {
  await limit?.stop();
  rmSync(tlsDir, { recursive: true, force: true });
}

const file = report(results, {
  quick, node: process.version, cpus: cpus().length, memory_GB: Math.round(totalmem() / 2 ** 30),
  load_before: loadBefore, date: new Date().toISOString(), duration_s: Math.round((performance.now() - t0) / 1000),
});
console.log(`wrote ${file}`);
