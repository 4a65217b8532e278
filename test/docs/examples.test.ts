/**
 * The runnable examples the README points at keep working: `npm run example` (examples/quickstart.ts, offline) and
 * `npx tsx examples/mx-delivery.ts` (a server in process, a trusted app delivering, a device consuming), run as a
 * reader would run them. `npm test` typechecks them (tsconfig.json includes examples/); this runs them.
 * examples/notes/ has its own test in test/cli/notes-example.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const ROOT = join(import.meta.dirname, '../..');
const run = promisify(execFile);

function example(file: string): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', join(ROOT, 'examples', file)], { cwd: ROOT, timeout: 120_000 });
}

describe('examples/', () => {
  it('quickstart.ts: documents, an index, an update, and a reopen with the passphrase', async () => {
    const { stdout } = await example('quickstart.ts');
    assert.match(stdout, /^created D-\S+ at rev \S+:1$/m);
    assert.match(stdout, /^updated to rev \S+:2$/m);
    // Both documents share the index value 'inbox', so their order follows their random ids.
    const inbox = /^inbox: (.*)$/m.exec(stdout)?.[1]?.split(', ').sort();
    assert.deepEqual(inbox, ['Hello again', 'Invoice']);
    assert.match(stdout, /^subjects starting with "h": 1$/m);
    assert.match(stdout, /^reopened with the passphrase: 2 documents at generation 3$/m);
  });

  it('mx-delivery.ts: three deliveries become three decrypted mail documents and leave the box empty', async () => {
    const { stdout } = await example('mx-delivery.ts');
    assert.equal(stdout.match(/^MX delivered "[^"]+": 200$/gm)?.length, 3, stdout);
    assert.match(stdout, /^pending on the server: 3$/m);
    assert.match(stdout, /^processed 3, failed 0; pending now: 0$/m);
    const docs = stdout.match(/^ {2}mail-[0-9a-f]{32}: (.+) \/ "Message number \d\.\\n"$/gm) ?? [];
    assert.deepEqual(docs.map((l) => /: (.+) \//.exec(l)![1]).sort(), ['Lunch?', 'Welcome', 'Your invoice']);
  });
});
