import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import {
  generateRecoveryCode,
  isRecoveryCode,
  normalizeRecoveryCode,
  recoveryDocId,
} from '../../../src/client/secrets/recovery-code.js';

test('recovery codes are ≥20 lowercase letters, different each time', () => {
  const codes = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const c = generateRecoveryCode();
    assert.match(c, /^[a-z]{20,}$/);
    assert.ok(isRecoveryCode(c));
    codes.add(c);
  }
  assert.equal(codes.size, 200);
});

test('letters are roughly uniform (chi-square over 26 bins)', () => {
  const counts = new Array<number>(26).fill(0);
  let n = 0;
  for (let i = 0; i < 2000; i++) {
    for (const ch of generateRecoveryCode()) {
      counts[ch.charCodeAt(0) - 97]!++;
      n++;
    }
  }
  const e = n / 26;
  const chi2 = counts.reduce((s, c) => s + ((c - e) * (c - e)) / e, 0);
  // 25 degrees of freedom: p < 1e-6 at about 70
  assert.ok(chi2 < 70, `chi2 ${chi2}`);
});

test('normalize drops spaces and dashes and lower-cases', () => {
  assert.equal(normalizeRecoveryCode('ABCD-efgh ijkl\nmnop'), 'abcdefghijklmnop');
  assert.equal(isRecoveryCode('short'), false);
  assert.equal(isRecoveryCode('abcdefghijklmnopqrs1'), false);
});

test('recoveryDocId = sha256(utf8(secret) + uuid) hex', () => {
  const expected = createHash('sha256').update(Buffer.from('pässuuid-1', 'utf8')).digest('hex');
  assert.equal(recoveryDocId('päss', 'uuid-1'), expected);
  assert.equal(recoveryDocId('123', 'u'), createHash('sha256').update('123u').digest('hex'));
});
