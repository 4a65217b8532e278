/**
 * U1DB revisions: vector clocks serialized as `"uid:n|uid:n"` with entries sorted by replica uid (§2a–2b).
 */
import { InvalidContentError } from '../errors.js';

/** A parsed revision: replica uid → counter. */
export type VectorClock = Map<string, number>;

/** Parse a revision string; `null`, `undefined` and `""` are the empty clock. */
export function parseRev(rev: string | null | undefined): VectorClock {
  const clock: VectorClock = new Map();
  if (rev === null || rev === undefined || rev === '') return clock;
  for (const part of rev.split('|')) {
    const sep = part.lastIndexOf(':');
    if (sep <= 0) throw new InvalidContentError('Malformed revision');
    const uid = part.slice(0, sep);
    const counterText = part.slice(sep + 1);
    if (!/^\d+$/.test(counterText)) throw new InvalidContentError('Malformed revision');
    clock.set(uid, Number(counterText));
  }
  return clock;
}

/** Serialize a clock, entries sorted by replica uid (byte order, as Python sorts str). */
export function formatRev(clock: VectorClock): string {
  return [...clock.keys()]
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((uid) => `${uid}:${clock.get(uid)}`)
    .join('|');
}

/** True when revision `a` strictly dominates `b` (U1DB `is_newer`). */
export function isNewer(a: string | null | undefined, b: string | null | undefined): boolean {
  const ca = parseRev(a);
  if (ca.size === 0) return false;
  const cb = parseRev(b);
  if (cb.size === 0) return true;
  let strictlyGreater = false;
  for (const [uid, n] of cb) {
    const mine = ca.get(uid);
    if (mine === undefined || mine < n) return false;
    if (mine > n) strictlyGreater = true;
  }
  return strictlyGreater || ca.size > cb.size;
}

/** Per-replica maximum of several revisions. */
export function maximizeRevs(...revs: Array<string | null | undefined>): VectorClock {
  const out: VectorClock = new Map();
  for (const rev of revs) {
    for (const [uid, n] of parseRev(rev)) out.set(uid, Math.max(n, out.get(uid) ?? 0));
  }
  return out;
}

/** The next revision of `rev` on replica `replicaUid`. */
export function incrementRev(rev: string | null | undefined, replicaUid: string): string {
  const clock = parseRev(rev);
  clock.set(replicaUid, (clock.get(replicaUid) ?? 0) + 1);
  return formatRev(clock);
}

/** Increment `replicaUid` on the maximum of all given revisions (used by resolve and auto-resolve). */
export function maximizeAndIncrement(replicaUid: string, ...revs: Array<string | null | undefined>): string {
  const clock = maximizeRevs(...revs);
  clock.set(replicaUid, (clock.get(replicaUid) ?? 0) + 1);
  return formatRev(clock);
}
