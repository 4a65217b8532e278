/**
 * The "seen ids" of a sync (fact sheet §1c–1d): documents a client uploaded in one sync, with the generation they
 * got, so the download of the same sync does not send them straight back. Kept in memory for an hour per
 * database, source replica and `sync_id`, as the original's cache.
 */

/** Options of {@link SeenIdsCache}. */
export interface SeenIdsCacheOptions {
  /** How long an entry lives after its last upload, default 3600 s. */
  readonly ttlMs?: number;
  /** Most entries kept (the oldest go first), default 10 000. */
  readonly maxEntries?: number;
  /** Clock (tests). */
  readonly now?: () => number;
}

interface Entry {
  readonly ids: Map<string, number>;
  /** Generations the sync's uploads created (documents stored as sent). */
  writes: number;
  expires: number;
}

/**
 * Bounded, expiring map from a sync to the ids it uploaded.
 *
 * @example
 * cache.record(seenIdsKey('user-a', 'replica', syncId), new Map([['D-1', 7]]));
 * cache.get(seenIdsKey('user-a', 'replica', syncId))?.get('D-1'); // 7
 */
export class SeenIdsCache {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: SeenIdsCacheOptions = {}) {
    this.ttlMs = options.ttlMs ?? 3600_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * Add uploaded ids (id → generation) and the number of generations their upload created to a sync's entry, and
   * extend its life. Answers the sync's writes so far (fewer if the entry was evicted meanwhile, never more).
   */
  record(key: string, ids: ReadonlyMap<string, number>, writes = 0): number {
    const now = this.now();
    this.evictExpired(now);
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = { ids: new Map(), writes: 0, expires: 0 };
    } else {
      this.entries.delete(key);
    }
    for (const [id, gen] of ids) entry.ids.set(id, gen);
    entry.writes += writes;
    entry.expires = now + this.ttlMs;
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    return entry.writes;
  }

  /** The ids uploaded in a sync, if it is still remembered. */
  get(key: string): ReadonlyMap<string, number> | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expires <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.ids;
  }

  /** Number of remembered syncs. */
  get size(): number {
    return this.entries.size;
  }

  private evictExpired(now: number): void {
    // Entries are kept in order of last use, so expired ones are at the front.
    for (const [key, entry] of this.entries) {
      if (entry.expires > now) break;
      this.entries.delete(key);
    }
  }
}

/**
 * Cache key of one sync. The original keys by source replica and `sync_id` only; the database is added so that
 * two users can never share an entry.
 */
export function seenIdsKey(dbName: string, sourceReplicaUid: string, syncId: string): string {
  return JSON.stringify([dbName, sourceReplicaUid, syncId]);
}
