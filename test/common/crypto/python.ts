/**
 * Runs a short Python 3 script as an independent implementation for cross-checks. A missing python3 or a
 * missing `cryptography` module FAILS the calling test on purpose: these checks are the evidence that our
 * output opens in the real (Python) Soledad and vice versa. CI installs Debian's `python3-cryptography`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

// A pyenv `python3` may shadow Debian's, which is where python3-cryptography installs; try both.
const CANDIDATES = [process.env.SOLEDAD_TEST_PYTHON, 'python3', '/usr/bin/python3'].filter(
  (c): c is string => c !== undefined && c !== '',
);
const PROBE = 'import hashlib, cryptography; from cryptography.hazmat.primitives.ciphers.aead import AESGCM; hashlib.scrypt';

let chosen: string | undefined;

function python(): string {
  if (chosen !== undefined) return chosen;
  for (const c of CANDIDATES) {
    const r = spawnSync(c, ['-c', PROBE], { encoding: 'utf8' });
    if (r.error === undefined && r.status === 0) {
      chosen = c;
      return c;
    }
  }
  assert.fail(`no python3 with the "cryptography" module found (tried ${CANDIDATES.join(', ')}); install python3-cryptography`);
}

/** Run `script` with `python3 -c`, feeding `input` as JSON on stdin; return stdout parsed as JSON. */
export function runPython(script: string, input: unknown): unknown {
  const r = spawnSync(python(), ['-c', script], {
    input: JSON.stringify(input),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(r.error, undefined, `could not start python3: ${String(r.error)}`);
  assert.equal(r.status, 0, `python3 script failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as unknown;
}
