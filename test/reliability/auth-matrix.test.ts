/**
 * The authorization matrix, generated from the route whitelists themselves (a new route without a sample path
 * here fails the test): every Users API route and method × {anonymous, bad token, expired token, revoked token,
 * another user's token, a services token}, and every Services API route × {anonymous, bad token, a user's token,
 * another service's token}, against a real server process. Every case must be refused (401/403/404 with an error
 * body) before anything is stored; the public and shared-by-design cases are listed, not silently skipped.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Agent } from 'undici';
import { encodeTokenAuthorization } from '../../src/common/protocol/auth.js';
import { SERVICES_API_ROUTES, USERS_API_ROUTES } from '../../src/server/auth/whitelist.js';
import { encodeSyncPut } from '../../src/common/protocol/sync-stream.js';
import { Counter } from './common.js';
import { agentFor, hasErrorBody, send, type Answer } from './http.js';
import { startServer, type Server } from './server.js';

const ALICE = randomBytes(16).toString('hex');
const BOB = randomBytes(16).toString('hex');
const SHARED_ID = `rel${randomBytes(8).toString('hex')}`;

/** A request for ALICE's data on each Users API route, by rule name; bodies that would succeed for her. */
function usersRequest(rule: string, method: string): { path: string; headers?: Record<string, string>; body?: string } | undefined {
  const syncPut = [...encodeSyncPut({ last_known_generation: 0, last_known_trans_id: '', sync_id: 's1', ensure: true }, [])].join('');
  const samples: Record<string, () => { path: string; headers?: Record<string, string>; body?: string }> = {
    info: () => ({ path: '/' }),
    robots: () => ({ path: '/robots.txt' }),
    'shared-db': () => ({ path: '/shared' }),
    'shared-doc': () => ({
      path: `/shared/doc/${SHARED_ID}`,
      ...(method === 'PUT' ? { headers: { 'content-type': 'application/json' }, body: '{"secret": "x"}' } : {}),
    }),
    sync: () => ({
      path: `/user-${ALICE}/sync-from/replica1`,
      ...(method === 'POST' ? { headers: { 'content-type': 'application/x-soledad-sync-put' }, body: syncPut } : {}),
      ...(method === 'PUT' ? { headers: { 'content-type': 'application/json' }, body: '{"generation": 0, "transaction_id": ""}' } : {}),
    }),
    blob: () => ({
      path: `/blobs/${ALICE}/blob1`,
      ...(method === 'PUT' ? { headers: { 'content-type': 'application/octet-stream' }, body: 'x'.repeat(100) } : {}),
      ...(method === 'POST' ? { headers: { 'content-type': 'application/json' }, body: '["PROCESSED"]' } : {}),
    }),
    blobs: () => ({ path: `/blobs/${ALICE}/` }),
    stream: () => ({ path: `/stream/${ALICE}/?direction=download`, headers: { 'content-type': 'application/json' }, body: '["blob1"]' }),
    incoming: () => ({ path: `/incoming/${ALICE}/msg1`, headers: { 'content-type': 'application/octet-stream' }, body: 'payload' }),
    quota: () => ({ path: `/quota/${ALICE}` }),
  };
  return samples[rule]?.();
}

/** Users API rules whose data belongs to the uuid in the path (another user's valid token → 403). */
const OWNED = new Set(USERS_API_ROUTES.filter((r) => r.uuidGroup !== undefined).map((r) => r.name));
/** Public resources (the original's anonymous tree): anyone may read them. */
const PUBLIC = new Set(['info', 'robots']);
/** The recovery database: any valid user may read and write a document whose id it knows (fact sheet §4c). */
const SHARED_BY_DESIGN = new Set(['shared-db', 'shared-doc']);

let server: Server;
let users: Agent;
let services: Agent;
const tokens: Record<'alice' | 'bob' | 'expired' | 'revoked', string> = { alice: '', bob: '', expired: '', revoked: '' };
const counter = new Counter('auth', 'route × credential matrix');
const exempt: string[] = [];

before(async () => {
  server = await startServer();
  users = agentFor(server.certFile);
  services = agentFor(undefined);
  [tokens.alice, tokens.bob, tokens.expired, tokens.revoked] = await Promise.all([
    server.token(ALICE), server.token(BOB), server.token(ALICE, '1s'), server.token(ALICE),
  ]);
  await server.revoke(tokens.revoked);
  await sleep(1100); // the expired token's second passes
});

after(async () => {
  counter.record([...exempt]);
  await users.close();
  await services.close();
  await server.stop();
});

function refused(a: Answer): boolean {
  return [401, 403, 404].includes(a.status) && hasErrorBody(a);
}

describe('authorization matrix (from the route table)', () => {
  it('every Users API route × every wrong credential is refused; nothing is stored', async () => {
    const credentials: Array<[string, string | undefined]> = [
      ['anonymous', undefined],
      ['bad token', encodeTokenAuthorization(ALICE, 'not-a-token-0123456789abcdef')],
      ['expired token', encodeTokenAuthorization(ALICE, tokens.expired)],
      ['revoked token', encodeTokenAuthorization(ALICE, tokens.revoked)],
      ['another user\'s token', encodeTokenAuthorization(BOB, tokens.bob)],
      ['another user\'s token under this uuid', encodeTokenAuthorization(ALICE, tokens.bob)],
      ['services token on the Users API', encodeTokenAuthorization('incoming', server.servicesToken)],
      ['malformed header', `Token ${'%'.repeat(10)}`],
      ['other scheme', `Basic ${Buffer.from(`${ALICE}:${tokens.alice}`).toString('base64')}`],
    ];
    const failures: string[] = [];
    for (const rule of USERS_API_ROUTES) {
      for (const method of rule.methods) {
        const sample = usersRequest(rule.name, method);
        assert.ok(sample !== undefined, `no sample request for the new route "${rule.name}": add one to this matrix`);
        for (const [credName, authorization] of credentials) {
          const isPublic = PUBLIC.has(rule.name) && (authorization === undefined || credName === 'another user\'s token');
          const sharedByDesign = SHARED_BY_DESIGN.has(rule.name) && credName === 'another user\'s token';
          const a = await send(users, server.url, {
            method, path: sample.path,
            headers: { ...sample.headers, ...(authorization === undefined ? {} : { authorization }) },
            ...(sample.body === undefined ? {} : { body: sample.body }),
          });
          const label = `${method} ${rule.name} with ${credName}: ${a.status} ${a.body.slice(0, 80)}`;
          if (isPublic || sharedByDesign) {
            exempt.push(`allowed by design: ${method} ${rule.name} with ${credName} (${a.status})`);
            continue;
          }
          // Another user's valid token on an owned route is a 403; everything else an authentication failure.
          const expected = credName === 'another user\'s token' && OWNED.has(rule.name) ? [403]
            : authorization === undefined ? [404] : credName === 'another user\'s token' ? [404] : [401];
          const ok = refused(a) && expected.includes(a.status);
          counter.add(ok, label);
          if (!ok) failures.push(label);
        }
      }
    }
    assert.deepEqual(failures, []);

    // Nothing of the refused requests reached a store: no user database, blob or incoming message. (The shared
    // recovery document was written by another user's valid token: allowed by design, listed above.)
    assert.equal(existsSync(join(server.dataDir, 'users', `user-${ALICE}.db`)), false, 'no user database was created');
    const asAlice = { authorization: encodeTokenAuthorization(ALICE, tokens.alice) };
    assert.equal((await send(users, server.url, { method: 'GET', path: `/blobs/${ALICE}/blob1`, headers: asAlice })).status, 404);
    assert.deepEqual(JSON.parse((await send(users, server.url, { method: 'GET', path: `/blobs/${ALICE}/?namespace=MX`, headers: asAlice })).body), []);
  });

  it('every Services API route × every wrong credential is refused (401); a user token never works there', async () => {
    const credentials: Array<[string, string | undefined]> = [
      ['anonymous', undefined],
      ['bad token', encodeTokenAuthorization('incoming', 'wrong-token')],
      ['user token on the Services API', encodeTokenAuthorization(ALICE, tokens.alice)],
      ['user token under the service name', encodeTokenAuthorization('incoming', tokens.alice)],
      ['services token of an unknown service', encodeTokenAuthorization('mx', server.servicesToken)],
    ];
    const failures: string[] = [];
    for (const rule of SERVICES_API_ROUTES) {
      for (const method of rule.methods) {
        const sample = usersRequest(rule.name, method);
        assert.ok(sample !== undefined, `no sample request for the new services route "${rule.name}"`);
        for (const [credName, authorization] of credentials) {
          const a = await send(services, server.servicesUrl, {
            method, path: sample.path,
            headers: { ...sample.headers, ...(authorization === undefined ? {} : { authorization }) },
            ...(sample.body === undefined ? {} : { body: sample.body }),
          });
          const label = `services ${method} ${rule.name} with ${credName}: ${a.status} ${a.body.slice(0, 80)}`;
          const ok = refused(a) && a.status === 401;
          counter.add(ok, label);
          if (!ok) failures.push(label);
        }
      }
    }
    assert.deepEqual(failures, []);
    const asAlice = { authorization: encodeTokenAuthorization(ALICE, tokens.alice) };
    assert.deepEqual(JSON.parse((await send(users, server.url, { method: 'GET', path: `/blobs/${ALICE}/?namespace=MX`, headers: asAlice })).body), [],
      'no incoming message was delivered');
  });

  it('controls: the right credentials reach every route (so the refusals above are about credentials)', async () => {
    const asAlice = { authorization: encodeTokenAuthorization(ALICE, tokens.alice) };
    for (const rule of USERS_API_ROUTES) {
      for (const method of rule.methods) {
        const sample = usersRequest(rule.name, method)!;
        const a = await send(users, server.url, { method, path: sample.path, headers: { ...sample.headers, ...asAlice },
          ...(sample.body === undefined ? {} : { body: sample.body }) });
        // The incoming route is whitelisted on the Users API (as in the original) but served only by the Services API.
        if (rule.name === 'incoming') assert.equal(a.status, 404, `${method} ${rule.name}`);
        else assert.ok(![401, 403].includes(a.status), `${method} ${rule.name} with the owner's token: ${a.status} ${a.body}`);
      }
    }
    const delivered = await send(services, server.servicesUrl, {
      method: 'PUT', path: `/incoming/${ALICE}/msg1`,
      headers: { 'content-type': 'application/octet-stream', authorization: encodeTokenAuthorization('incoming', server.servicesToken) },
      body: 'payload',
    });
    assert.equal(delivered.status, 200, `delivery with the services token: ${delivered.body}`);
  });
});
