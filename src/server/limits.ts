/**
 * Limits that keep one user, or one slow connection, from starving the others: how many sync requests of one
 * user run at once, and the connection timeouts of the Users API listener.
 */
import type { onRequestAsyncHookHandler } from 'fastify';
import { UnavailableError } from '../common/errors.js';
import { authenticatedAs } from './auth/hook.js';
import { pathOf } from './auth/whitelist.js';

/** Limits of the Users API (see the `headers_timeout`, `body_timeout` and `max_syncs_per_user` options). */
export interface UsersApiLimits {
  /** Time to receive the request line and headers, ms (default 30 s). */
  readonly headersTimeoutMs?: number;
  /** Longest silence of a connection in both directions, ms (default 120 s). */
  readonly bodyTimeoutMs?: number;
  /** Sync requests of one user served at once; 0 = no limit (default 8). */
  readonly maxSyncsPerUser?: number;
}

/** Defaults of {@link UsersApiLimits}. */
export const DEFAULT_LIMITS = {
  /** `headers_timeout`: 30 s. */
  headersTimeoutMs: 30_000,
  /** `body_timeout`: 120 s. */
  bodyTimeoutMs: 120_000,
  /** `max_syncs_per_user`: 8. */
  maxSyncsPerUser: 8,
} as const;

const SYNC_PATH = /^\/user-[^/]+\/sync-from\/[^/]+$/;

/**
 * An `onRequest` hook, added after authentication, that counts the sync requests in flight per user and answers
 * 503 `unavailable` beyond `max` (clients retry a 503 after a pause). A request counts until its connection's
 * response is finished or closed, whichever comes first.
 *
 * @example
 * app.addHook('onRequest', syncConcurrencyLimit(8));
 */
export function syncConcurrencyLimit(max: number): onRequestAsyncHookHandler {
  const inFlight = new Map<string, number>();
  return async (request, reply) => {
    if (max <= 0 || !SYNC_PATH.test(pathOf(request.url))) return;
    const user = authenticatedAs(request);
    if (user === undefined) return;
    const n = inFlight.get(user) ?? 0;
    if (n >= max) {
      reply.header('retry-after', '1');
      throw new UnavailableError(`Too many syncs of this user at once (${max}); retry later`);
    }
    inFlight.set(user, n + 1);
    let released = false;
    reply.raw.once('close', () => {
      if (released) return;
      released = true;
      const left = (inFlight.get(user) ?? 1) - 1;
      if (left <= 0) inFlight.delete(user);
      else inFlight.set(user, left);
    });
  };
}
