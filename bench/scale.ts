/**
 * Scale: many concurrent clients (separate users, separate TLS connections) each syncing documents to one
 * server process. The clients live in a few child processes so that one event loop does not decide fairness.
 * Reports total time, p50/p99 of the per-sync latency (from the common start), errors and the server's peak RSS.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteTokenStore } from '../src/server/backends/sqlite/tokens.js';
import { startServerProcess } from '../test/e2e/server-process.js';
import type { ScaleDone, ScaleSetup } from './peers/scale-client.js';
import type { ScenarioResult } from './report.js';
import { mb, ms, ProcWatch, quantile } from './util.js';

function waitFor<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (msg: { type: string }) => {
      if (msg.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(msg as T);
    };
    const onExit = (code: number | null) => reject(new Error(`scale client exited with ${code} before "${type}"`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/**
 * Run the scale scenario: `clients` users in `processes` child processes, each syncing `docs` × `size` bytes.
 *
 * @example
 * results.push(await runScaleScenario({ clients: 100, docs: 100, size: 10 * 1024, processes: 4 }));
 */
export async function runScaleScenario(opts: { clients: number; docs: number; size: number; processes: number }): Promise<ScenarioResult> {
  const server = await startServerProcess();
  const watch = new ProcWatch(server.pid()!);
  const work = mkdtempSync(join(tmpdir(), 'soledad-bench-scale-'));
  const children: ChildProcess[] = [];
  try {
    // Tokens straight into the engine's token file (WAL: the running server sees them); one CLI call per user
    // would cost a process start each.
    const tokens = new SqliteTokenStore(join(server.dataDir, 'tokens.db'));
    const users: Array<{ uuid: string; token: string }> = [];
    for (let i = 0; i < opts.clients; i++) {
      const uuid = randomUUID().replace(/-/g, '');
      users.push({ uuid, token: await tokens.addToken(uuid) });
    }
    tokens.close();

    const perProcess = Math.ceil(opts.clients / opts.processes);
    for (let p = 0; p * perProcess < users.length; p++) {
      const child = fork(join(import.meta.dirname, 'peers', 'scale-client.ts'), [], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.push(child);
      const setup: ScaleSetup = {
        type: 'setup', serverUrl: server.url, certFile: server.certFile, work,
        users: users.slice(p * perProcess, (p + 1) * perProcess), docs: opts.docs, size: opts.size,
      };
      const ready = waitFor(child, 'ready');
      child.send(setup);
      await ready;
    }
    watch.resetPeak();
    const cpu0 = watch.cpuMs();
    const t0 = performance.now();
    const done = children.map((c) => waitFor<ScaleDone>(c, 'done'));
    for (const c of children) c.send({ type: 'go' });
    const answers = await Promise.all(done);
    const totalMs = performance.now() - t0;
    const latencies = answers.flatMap((a) => a.latenciesMs);
    const errors = answers.flatMap((a) => a.errors);
    const p50 = quantile(latencies, 0.5);
    const p99 = quantile(latencies, 0.99);
    return {
      name: `scale: ${opts.clients} clients × ${opts.docs} × ${Math.round(opts.size / 1024)} KB, one server`,
      ours_ms: totalMs,
      extra: {
        syncs_ok: latencies.length,
        errors: errors.length,
        p50_ms: ms(p50),
        p99_ms: ms(p99),
        p99_over_p50: Number((p99 / p50).toFixed(2)),
        server_cpu_ms: ms(watch.cpuMs() - cpu0),
        server_peak_rss_MB: mb(watch.peakRss()),
        client_processes: children.length,
        ...(errors.length > 0 ? { first_error: errors[0]! } : {}),
      },
      checks: [
        { what: `scale: ${opts.clients} clients, zero errors`, ok: errors.length === 0 && latencies.length === opts.clients },
        { what: 'scale: p99 within 10× p50', ok: p99 <= 10 * p50 },
      ],
    };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
