/**
 * `soledad sync`: exchange documents with the server, with progress and a one-line summary; the outcome is
 * remembered in the profile's `state.json` for `soledad status`.
 */
import type { Command } from 'commander';
import type { SyncStats } from '../../client/sync/synchronizer.js';
import { contextOf, withSoledad } from './context.js';
import { describeError } from './errors.js';
import { withExamples } from './help.js';
import { formatBytes, type CliIo } from './output.js';
import { readState, writeState, type LastSync } from './profile.js';
import { syncProgressView } from './progress.js';

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * The one-line summary of a sync.
 *
 * @example
 * syncSummary(sol.syncStats()!); // 'synced: sent 3 docs (1.2 KiB), received 1 doc (640 B), 0 conflicts, …'
 */
export function syncSummary(s: SyncStats): string {
  const secs = (s.durationMs / 1000).toFixed(2);
  if (s.upToDate) return `synced: already up to date (generation ${s.localGenerationAfter}, ${secs} s)`;
  return `synced: sent ${plural(s.docsSent, 'doc')} (${formatBytes(s.bytesSent)}), ` +
    `received ${plural(s.docsReceived, 'doc')} (${formatBytes(s.bytesReceived)}), ` +
    `${plural(s.docsConflicted, 'conflict')}, generation ${s.localGenerationBefore} → ${s.localGenerationAfter}, ${secs} s`;
}

function lastSyncOf(stats: SyncStats | undefined, error: unknown, generation: number): LastSync {
  return {
    at: new Date().toISOString(),
    ok: error === undefined,
    ...(error !== undefined ? { error: describeError(error).name } : {}),
    docsSent: stats?.docsSent ?? 0,
    docsReceived: stats?.docsReceived ?? 0,
    docsConflicted: stats?.docsConflicted ?? 0,
    bytesSent: stats?.bytesSent ?? 0,
    bytesReceived: stats?.bytesReceived ?? 0,
    durationMs: stats?.durationMs ?? 0,
    localGeneration: stats?.localGenerationAfter ?? generation,
  };
}

/**
 * Register `soledad sync`.
 *
 * @example
 * registerSyncCommand(program, processIo());
 */
export function registerSyncCommand(program: Command, io: CliIo): void {
  withExamples(program.command('sync')
    .summary('synchronize documents with the server, with progress')
    .description('synchronize documents with the server: upload local changes, download remote ones (verified ' +
      'before they are applied). Shows progress on stderr: bars on a terminal, plain lines otherwise.')
    .action(async (_opts: object, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol, profile) => {
        const view = syncProgressView(ctx.out);
        sol.on('sync-progress', (p) => view.update(p));
        let failure: unknown;
        try {
          await sol.sync();
        } catch (err) {
          failure = err;
        } finally {
          view.finish();
        }
        const stats = sol.syncStats();
        const generation = (await sol.getGenerationInfo()).generation;
        const state = await readState(profile);
        await writeState(profile, { ...state, lastSync: lastSyncOf(stats, failure, generation) });
        if (failure !== undefined) throw failure;
        ctx.out.result(stats ?? null, () => (stats === undefined ? 'synced' : syncSummary(stats)));
        if (stats !== undefined && stats.docsConflicted > 0) {
          ctx.out.note("some documents conflict: 'soledad doc list --conflicted', then 'soledad doc resolve <id>'");
        }
      });
    }),
  'soledad sync', 'soledad sync --json | jq .docsReceived', 'soledad --profile phone sync 2> sync.log');
}
