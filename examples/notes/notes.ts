/**
 * notes: a tiny end-to-end encrypted note-taking app on the Soledad client library.
 *
 * Edits are local and work offline; `sync` exchanges them with the server when you ask; a note edited on two
 * devices comes back as a conflict and the app asks which version to keep (or merges them).
 *
 *   npx tsx examples/notes/notes.ts                      # offline, data in ./.notes
 *   NOTES_SERVER=https://localhost:2323/ NOTES_UUID=… NOTES_TOKEN=… NOTES_CA=server.crt npx tsx examples/notes/notes.ts
 *
 * The passphrase comes from NOTES_PASSPHRASE or the first input line. Type `help` for the commands.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { Document, Soledad, SoledadError, type JsonObject, type SoledadDocument } from '../../src/index.js';

const env = process.env;
const dataDir = resolve(env['NOTES_DIR'] ?? '.notes');
const server = env['NOTES_SERVER'];

const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY === true });
const input = rl[Symbol.asyncIterator]();

/** Ask a question; works on a terminal and with piped input alike. `null` at end of input. */
async function ask(question: string): Promise<string | null> {
  process.stdout.write(question);
  const next = await input.next();
  return next.done === true ? null : next.value.trim();
}

interface Note extends JsonObject {
  type: 'note';
  title: string;
  body: string;
  updated: string;
}

type NoteDoc = SoledadDocument & { content: Note };

function isNote(doc: SoledadDocument): doc is NoteDoc {
  return doc.content?.['type'] === 'note';
}

function show(doc: NoteDoc): string {
  const clip = typeof doc.content['blob_id'] === 'string' ? '  [attachment]' : '';
  return `${doc.docId}  ${doc.content.title}${clip}${doc.hasConflicts ? '  [conflict]' : ''}\n    ${doc.content.body.replace(/\n/g, '\n    ')}`;
}

async function notes(sol: Soledad): Promise<NoteDoc[]> {
  return (await sol.getFromIndex('by-updated', '*')).filter(isNote).reverse(); // newest first
}

/** Offer each version of a conflicted note, or a merge of all of them; store the choice. */
async function resolveConflict(sol: Soledad, docId: string): Promise<void> {
  const versions = (await sol.getDocConflicts(docId)).filter(isNote);
  if (versions.length < 2) return;
  console.log(`\n"${versions[0]!.content.title}" was changed on two devices:`);
  versions.forEach((v, i) => console.log(`  ${i + 1}) ${v.content.title}: ${v.content.body}`));
  const answer = await ask(`keep which? [1-${versions.length}, m = merge] `);
  const pick = Number(answer);
  const content: Note = Number.isInteger(pick) && pick >= 1 && pick <= versions.length
    ? versions[pick - 1]!.content
    : {
      ...versions[0]!.content,
      body: versions.map((v) => v.content.body).join('\n--- merged ---\n'),
      updated: new Date().toISOString(),
    };
  const revs = versions.map((v) => v.rev).filter((r): r is string => r !== null);
  await sol.resolveDoc(new Document(docId, versions[0]!.rev, content), revs);
  console.log('resolved.');
}

async function sync(sol: Soledad): Promise<void> {
  if (server === undefined) {
    console.log('offline: set NOTES_SERVER, NOTES_UUID, NOTES_TOKEN to sync');
    return;
  }
  const onProgress = (p: { phase: string; docsSent: number; docsReceived: number }): void => {
    if (process.stdout.isTTY) process.stdout.write(`\r  ${p.phase}: sent ${p.docsSent}, received ${p.docsReceived}   `);
  };
  sol.on('sync-progress', onProgress);
  try {
    await sol.sync();
  } finally {
    sol.off('sync-progress', onProgress);
    if (process.stdout.isTTY) process.stdout.write('\n');
  }
  const stats = sol.syncStats();
  // Attachments travel separately from documents: send ours, fetch the ones other devices attached.
  const blobs = await sol.blobs.sync();
  console.log(`synced: sent ${stats?.docsSent ?? 0}, received ${stats?.docsReceived ?? 0}` +
    `, attachments up ${blobs.uploaded.succeeded.length}, down ${blobs.downloaded.succeeded.length}`);
  for (const doc of (await sol.getAllDocs()).docs) if (doc.hasConflicts) await resolveConflict(sol, doc.docId);
}

const HELP = `commands:
  new <title>        write a note (body on the next line)
  list               all notes, newest first
  find <prefix>      notes whose title starts with <prefix>
  edit <id>          replace a note's body
  rm <id>            delete a note
  attach <id> <file> attach a file to a note;  save <id> <file>  write it out
  sync               exchange notes with the server (and settle conflicts)
  quit`;

async function main(): Promise<void> {
  const passphrase = env['NOTES_PASSPHRASE'] ?? (await ask('passphrase: '));
  if (passphrase === null || passphrase === '') throw new Error('a passphrase is needed');
  const sol = await Soledad.open({
    uuid: env['NOTES_UUID'] ?? '0123456789abcdef0123456789abcdef',
    passphrase,
    secretsPath: join(dataDir, 'soledad.json'),
    localDbPath: join(dataDir, 'notes.u1db'),
    ...(server !== undefined ? { serverUrl: server, authToken: env['NOTES_TOKEN'] ?? '' } : {}),
    ...(env['NOTES_CA'] !== undefined ? { certFile: env['NOTES_CA'] } : {}),
  });
  // Indexes are local: create them on every start (creating an existing one with the same definition is a no-op).
  await sol.createIndex('by-title', 'lower(title)');
  await sol.createIndex('by-updated', 'updated');
  console.log(`${(await notes(sol)).length} notes in ${dataDir}. Type "help".`);
  try {
    for (let line = await ask('> '); line !== null && line !== 'quit'; line = await ask('> ')) {
      const [cmd = '', ...rest] = line.split(' ');
      const arg = rest.join(' ').trim();
      try {
        if (cmd === 'new' && arg !== '') {
          const body = (await ask('body: ')) ?? '';
          const doc = await sol.createDoc({ type: 'note', title: arg, body, updated: new Date().toISOString() });
          console.log(`saved ${doc.docId}`);
        } else if (cmd === 'list') {
          for (const n of await notes(sol)) console.log(show(n));
        } else if (cmd === 'find' && arg !== '') {
          for (const n of (await sol.getFromIndex('by-title', `${arg.toLowerCase()}*`)).filter(isNote)) console.log(show(n));
        } else if (cmd === 'edit' && arg !== '') {
          const doc = await sol.getDoc(arg);
          if (doc === null || !isNote(doc)) throw new Error(`no note ${arg}`);
          doc.content = { ...doc.content, body: (await ask('new body: ')) ?? '', updated: new Date().toISOString() };
          await sol.putDoc(doc);
          console.log('saved');
        } else if (cmd === 'rm' && arg !== '') {
          const doc = await sol.getDoc(arg);
          if (doc === null) throw new Error(`no note ${arg}`);
          await sol.deleteDoc(doc);
          console.log('deleted');
        } else if ((cmd === 'attach' || cmd === 'save') && rest.length === 2) {
          const doc = await sol.getDoc(rest[0]!);
          if (doc === null || !isNote(doc)) throw new Error(`no note ${rest[0]}`);
          if (cmd === 'attach') {
            if (typeof doc.content['blob_id'] === 'string') await doc.deleteAttachment(); // blobs are immutable
            await doc.putAttachment(createReadStream(rest[1]!));
            await sol.putDoc(doc);
            console.log('attached (it uploads in the background, or with the next sync)');
          } else {
            const data = await doc.getAttachment();
            if (data === null) throw new Error('no attachment');
            await pipeline(data, createWriteStream(rest[1]!));
            console.log(`wrote ${rest[1]}`);
          }
        } else if (cmd === 'sync') {
          await sync(sol);
        } else if (cmd !== '') {
          console.log(HELP);
        }
      } catch (err) {
        // Named errors (ConflictedDocError, ConnectionError, …) are worth showing as they are.
        console.log(err instanceof SoledadError ? `${err.name}: ${err.message}` : String(err));
      }
    }
  } finally {
    await sol.close();
    rl.close();
  }
}

await main();
