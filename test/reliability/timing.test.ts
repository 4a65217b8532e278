/**
 * Token checks take the same path whatever is wrong with the credentials: an unknown user, a wrong token, another
 * user's token, an expired token. Asserted structurally (the same sequence of hashing, lookup and
 * `timingSafeEqual` calls, traced on the real code) and with a coarse, interleaved timing comparison whose
 * discriminating power is shown on a deliberately leaky checker, so that it can fail without being flaky.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SqliteTokenStore } from '../../src/server/backends/sqlite/tokens.js';
import { checkServiceToken } from '../../src/server/auth/services-tokens.js';
import { Counter, removeDir, scaled, tempDir } from './common.js';

const ALICE = 'a'.repeat(32);
const BOB = 'b'.repeat(32);
let dir: string;
let store: SqliteTokenStore;
let aliceToken: string;
let bobToken: string;
let expiredToken: string;
const counter = new Counter('auth', 'constant-time token checks');
const notes: string[] = [];

before(async () => {
  dir = tempDir('timing');
  store = new SqliteTokenStore(join(dir, 'tokens.db'));
  aliceToken = await store.addToken(ALICE);
  bobToken = await store.addToken(BOB);
  expiredToken = await store.addToken(ALICE, { expiresAt: new Date(Date.now() - 1000) });
});

after(() => {
  counter.record(notes);
  store.close();
  removeDir(dir);
});

/** Run `fn` with `createHash`, `timingSafeEqual` and the token lookup traced; returns the sequence of calls. */
async function trace(fn: () => Promise<unknown> | unknown): Promise<string[]> {
  const ops: string[] = [];
  const origHash = crypto.createHash;
  const origEqual = crypto.timingSafeEqual;
  const stmt = (store as unknown as { getStmt: { get: (...a: unknown[]) => unknown } }).getStmt;
  const origGet = stmt.get;
  crypto.createHash = ((alg: string, opts?: crypto.HashOptions) => {
    ops.push(`hash(${alg})`);
    return origHash(alg, opts);
  }) as typeof crypto.createHash;
  crypto.timingSafeEqual = ((a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
    ops.push(`timingSafeEqual(${a.byteLength},${b.byteLength})`);
    return origEqual(a, b);
  }) as typeof crypto.timingSafeEqual;
  stmt.get = function (this: unknown, ...args: unknown[]) {
    ops.push('lookup(by token hash)');
    return origGet.apply(this, args);
  };
  // The modules imported `createHash` and `timingSafeEqual` by name: make those bindings see the wrappers.
  syncBuiltinESMExports();
  try {
    await fn();
  } finally {
    crypto.createHash = origHash;
    crypto.timingSafeEqual = origEqual;
    stmt.get = origGet;
    syncBuiltinESMExports();
  }
  return ops;
}

describe('constant-time credential checks', () => {
  it('user tokens: every wrong credential takes the same path (one lookup by hash, two digests, one timingSafeEqual)', async () => {
    const fake = 'x'.repeat(aliceToken.length);
    const cases: Array<[string, () => Promise<boolean>, boolean]> = [
      ['unknown user', () => store.check('c'.repeat(32), fake), false],
      ['known user, wrong token', () => store.check(ALICE, fake), false],
      ['another user\'s token', () => store.check(ALICE, bobToken), false],
      ['expired token', () => store.check(ALICE, expiredToken), false],
      ['right token', () => store.check(ALICE, aliceToken), true],
    ];
    const traces = new Map<string, string[]>();
    for (const [name, run, expected] of cases) {
      let result: boolean | undefined;
      traces.set(name, await trace(async () => {
        result = await run();
      }));
      assert.equal(result, expected, name);
    }
    const reference = traces.get('unknown user')!;
    assert.ok(reference.includes('lookup(by token hash)') && reference.some((o) => o.startsWith('timingSafeEqual')),
      `the reference path hashes, looks up and compares: ${reference.join(', ')}`);
    for (const [name, ops] of traces) {
      const same = JSON.stringify(ops) === JSON.stringify(reference);
      counter.add(same, `${name}: ${ops.join(' → ')}`);
      assert.deepEqual(ops, reference, `${name} takes another path`);
    }
  });

  it('services tokens: an unknown service and a wrong token take the same path', async () => {
    const tokens = new Map([['incoming', 's3cret-token-value']]);
    const a = await trace(() => checkServiceToken(tokens, 'nope', 'guess-token-value!'));
    const b = await trace(() => checkServiceToken(tokens, 'incoming', 'guess-token-value!'));
    counter.add(JSON.stringify(a) === JSON.stringify(b), `unknown service ${a.join(',')} vs wrong token ${b.join(',')}`);
    assert.deepEqual(a, b);
    assert.ok(a.some((o) => o.startsWith('timingSafeEqual')), 'compared in constant time');
  });

  /**
   * Median time of each checker over `n` interleaved rounds. Interleaving makes machine noise hit every case alike;
   * medians ignore the outliers (GC, scheduling).
   */
  async function medians(checkers: Array<() => Promise<boolean>>, n: number): Promise<number[]> {
    const samples: number[][] = checkers.map(() => []);
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < checkers.length; k++) {
        const j = (i + k) % checkers.length;
        const t0 = process.hrtime.bigint();
        await checkers[j]!();
        samples[j]!.push(Number(process.hrtime.bigint() - t0));
      }
    }
    return samples.map((s) => s.sort((x, y) => x - y)[Math.floor(s.length / 2)]!);
  }

  /** Coarse distinguishability: the slower median over the faster one. Real leaks are ×10 and more here. */
  const ratio = (m: number[]): number => Math.max(...m) / Math.min(...m);

  it('timing: an unknown user and a wrong token are indistinguishable (a leaky checker is not)', async () => {
    const n = scaled(1500, 300);
    const fake = 'y'.repeat(aliceToken.length);
    const m = await medians([
      () => store.check('d'.repeat(32), fake),
      () => store.check(ALICE, fake),
      () => store.check(ALICE, bobToken),
    ], n);
    // The negative control: a checker that answers unknown users early, as a naive implementation would.
    const known = new Set([ALICE, BOB]);
    const leaky = (uuid: string, token: string): Promise<boolean> => (known.has(uuid) ? store.check(uuid, token) : Promise.resolve(false));
    const control = await medians([() => leaky('d'.repeat(32), fake), () => leaky(ALICE, fake)], n);
    // Unknown user vs wrong token is what an attacker probing for accounts compares. Another user's (valid) token
    // finds a row and costs its decoding: that tells its holder only what they know already.
    const ours = ratio(m.slice(0, 2));
    const theirs = ratio(control);
    const line = `timing medians unknown user/wrong token/another user's token ${m.join('/')} ns (ratio of the first two ${ours.toFixed(2)}); leaky control ratio ${theirs.toFixed(2)}`;
    notes.push(line);
    counter.add(ours < 1.5 && theirs > 3, line);
    assert.ok(theirs > 3, `the statistic must tell a leaky checker apart (ratio ${theirs.toFixed(2)})`);
    assert.ok(ours < 1.5, `unknown user and wrong token medians differ: ${m.join(', ')} ns (ratio ${ours.toFixed(2)})`);
  });
});
