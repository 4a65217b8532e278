/**
 * `soledad status`: the profile, whether the server answers, the last sync, and what is stored locally and on
 * the server.
 */
import type { Command } from 'commander';
import { HttpClient } from '../../client/http/client.js';
import type { Soledad } from '../../client/soledad.js';
import { contextOf, withSoledad } from './context.js';
import { describeError } from './errors.js';
import { withExamples } from './help.js';
import { formatBytes, type CliIo } from './output.js';
import { readState, type LastSync, type Profile } from './profile.js';

/** How long `status` waits for the server before calling it unreachable (ms). */
export const STATUS_TIMEOUT_MS = 5000;

/** What `soledad status --json` prints. */
export interface StatusReport {
  /** Profile name. */
  profile: string;
  /** Profile directory. */
  dir: string;
  /** The user's uuid. */
  uuid: string;
  /** Server base URL. */
  server: string;
  /** `GET /` answered; with the server's version and whether it offers blobs. */
  reachable: boolean;
  /** The server's version, from `GET /`. */
  serverVersion?: string;
  /** Whether the server offers blobs, from `GET /`. */
  serverBlobs?: boolean;
  /** Why the server is unreachable (an error name). */
  serverError?: string;
  /** The last sync from `state.json`, `null` before the first. */
  lastSync: LastSync | null;
  /** The local database generation. */
  localGeneration: number;
  /** Live documents. */
  docs: number;
  /** Documents with conflicts. */
  conflicts: number;
  /** Blobs waiting to be uploaded or downloaded. */
  pendingBlobs: { upload: number; download: number };
  /** `GET /quota/<uuid>`, or `null` when the server does not offer it or did not answer. */
  quota: { used: number; limit: number } | null;
}

interface ServerFacts {
  reachable: boolean;
  version?: string;
  blobs?: boolean;
  error?: string;
  quota: { used: number; limit: number } | null;
}

async function probeServer(profile: Profile): Promise<ServerFacts> {
  const http = new HttpClient({
    serverUrl: profile.data.server,
    uuid: profile.data.uuid,
    token: profile.data.token,
    ...(profile.data.ca !== undefined ? { certFile: profile.data.ca } : {}),
    connectTimeoutMs: STATUS_TIMEOUT_MS,
    headersTimeoutMs: STATUS_TIMEOUT_MS,
    bodyTimeoutMs: STATUS_TIMEOUT_MS,
    retryDelaysMs: [],
  });
  try {
    let info: { version?: unknown; blobs?: unknown };
    try {
      info = await http.json<{ version?: unknown; blobs?: unknown }>({ method: 'GET', path: '/', anonymous: true, signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
    } catch (err) {
      return { reachable: false, error: describeError(err).name, quota: null };
    }
    let quota: ServerFacts['quota'] = null;
    try {
      const q = await http.json<{ used?: unknown; limit?: unknown }>({
        method: 'GET', path: `/quota/${encodeURIComponent(profile.data.uuid)}`, signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
      });
      if (typeof q.used === 'number' && typeof q.limit === 'number') quota = { used: q.used, limit: q.limit };
    } catch {
      // Servers without the blobs service (and the original one) have no quota route: the quota is unknown.
    }
    return {
      reachable: true,
      ...(typeof info.version === 'string' ? { version: info.version } : {}),
      ...(typeof info.blobs === 'boolean' ? { blobs: info.blobs } : {}),
      quota,
    };
  } finally {
    await http.destroy();
  }
}

/** Pending blob counts from the local blobs database. */
async function pendingBlobs(sol: Soledad): Promise<StatusReport['pendingBlobs']> {
  const p = await sol.blobs.syncProgress();
  return { upload: p.PENDING_UPLOAD ?? 0, download: p.PENDING_DOWNLOAD ?? 0 };
}

function statusLines(r: StatusReport): string[] {
  const last = r.lastSync;
  return [
    `profile:          ${r.profile} (${r.dir})`,
    `user:             ${r.uuid}`,
    `server:           ${r.server} — ${r.reachable ? `reachable${r.serverVersion !== undefined ? `, version ${r.serverVersion}` : ''}${r.serverBlobs === true ? ', blobs' : ''}` : `unreachable (${r.serverError ?? 'error'})`}`,
    `last sync:        ${last === null ? 'never' : `${last.at}${last.ok ? '' : ` FAILED (${last.error ?? 'error'})`}, sent ${last.docsSent}, received ${last.docsReceived}`}`,
    `local generation: ${r.localGeneration}`,
    `documents:        ${r.docs}`,
    `conflicts:        ${r.conflicts}`,
    `pending blobs:    ${r.pendingBlobs.upload} to upload, ${r.pendingBlobs.download} to download`,
    `quota:            ${r.quota === null ? 'unknown' : `${formatBytes(r.quota.used)} used of ${formatBytes(r.quota.limit)}`}`,
  ];
}

/**
 * Register `soledad status`.
 *
 * @example
 * registerStatusCommand(program, processIo());
 */
export function registerStatusCommand(program: Command, io: CliIo): void {
  withExamples(program.command('status')
    .summary('server, last sync, counts and quota at a glance')
    .description('show the profile, whether the server answers, the last sync, local generation, documents, ' +
      'conflicts, pending blobs and the quota (when the server reports it)')
    .action(async (_opts: object, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol, profile) => {
        const serverFacts = probeServer(profile);
        const { generation } = await sol.getGenerationInfo();
        const { docs } = await sol.getAllDocs();
        const pending = await pendingBlobs(sol);
        const state = await readState(profile);
        const facts = await serverFacts;
        const report: StatusReport = {
          profile: profile.name,
          dir: profile.dir,
          uuid: profile.data.uuid,
          server: profile.data.server,
          reachable: facts.reachable,
          ...(facts.version !== undefined ? { serverVersion: facts.version } : {}),
          ...(facts.blobs !== undefined ? { serverBlobs: facts.blobs } : {}),
          ...(facts.error !== undefined ? { serverError: facts.error } : {}),
          lastSync: state.lastSync ?? null,
          localGeneration: generation,
          docs: docs.length,
          conflicts: docs.filter((d) => d.hasConflicts).length,
          pendingBlobs: pending,
          quota: facts.quota,
        };
        ctx.out.result(report, () => statusLines(report));
      });
    }),
  'soledad status', 'soledad status --json | jq .quota');
}
