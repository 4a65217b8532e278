/**
 * A short offline tour of the client: open (secrets are generated on first open), documents, an index,
 * a conflict-free update, and reopening with the passphrase. Run with `npm run example`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Soledad } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'soledad-example-'));
const opts = {
  uuid: '0123456789abcdef0123456789abcdef',
  passphrase: 'correct horse battery staple',
  secretsPath: join(dir, 'soledad.json'),
  localDbPath: join(dir, 'soledad.u1db'),
};

try {
  const sol = await Soledad.open(opts);
  console.log(`opened replica ${sol.replicaUid} in ${dir}`);

  await sol.createIndex('by-tag', 'tags');
  await sol.createIndex('by-subject', 'lower(subject)');
  const hello = await sol.createDoc({ subject: 'Hello', tags: ['inbox', 'greeting'] });
  await sol.createDoc({ subject: 'Invoice', tags: ['inbox', 'work'] });
  console.log(`created ${hello.docId} at rev ${hello.rev}`);

  hello.content = { ...hello.content, subject: 'Hello again' };
  await sol.putDoc(hello);
  console.log(`updated to rev ${hello.rev}`);

  const inbox = await sol.getFromIndex('by-tag', 'inbox');
  console.log(`inbox: ${inbox.map((d) => d.content?.['subject']).join(', ')}`);
  console.log(`subjects starting with "h": ${(await sol.getFromIndex('by-subject', 'h*')).length}`);
  await sol.close();

  const again = await Soledad.open(opts);
  const { docs, generation } = await again.getAllDocs();
  console.log(`reopened with the passphrase: ${docs.length} documents at generation ${generation}`);
  await again.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
