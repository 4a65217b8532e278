/**
 * The `examples/notes` app, driven through piped input against a real server: notes written offline on one device
 * reach another after `sync`, and a note edited on both is offered for resolution and merged.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServerProcess, type ServerProcess } from '../e2e/server-process.js';

const APP = join(import.meta.dirname, '../../examples/notes/notes.ts');
const ROOT = join(import.meta.dirname, '../..');

let server: ServerProcess;
let work: string;
let user: { uuid: string; token: string };

before(async () => {
  server = await startServerProcess();
  work = mkdtempSync(join(tmpdir(), 'soledad-notes-'));
  const uuid = randomUUID().replace(/-/g, '');
  user = { uuid, token: await server.token(uuid) };
});
after(async () => {
  await server?.stop();
  rmSync(work, { recursive: true, force: true });
});

function notes(device: string, script: string[], online = true): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, NOTES_DIR: join(work, device), NOTES_PASSPHRASE: 'notes pass' };
  if (online) Object.assign(env, { NOTES_SERVER: server.url, NOTES_UUID: user.uuid, NOTES_TOKEN: user.token, NOTES_CA: server.certFile });
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', APP], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`notes exited ${code}:\n${out}\n${err}`))));
    child.stdin.end(`${script.join('\n')}\n`);
  });
}

describe('examples/notes', () => {
  it('offline edits sync on demand, an attachment travels, a conflicting edit is resolved by the prompt', async () => {
    const created = await notes('a', ['new Groceries', 'milk, eggs', 'sync', 'quit']);
    const id = /saved (D-[0-9a-f]+)/.exec(created)?.[1];
    assert.ok(id, created);
    assert.match(created, /synced: sent 1, received 0/);

    const b = await notes('b', ['sync', 'list', 'quit']);
    assert.match(b, new RegExp(`${id}  Groceries\\n {4}milk, eggs`));

    const photo = join(work, 'photo.bin');
    writeFileSync(photo, randomBytes(300_000));
    const attached = await notes('a', [`attach ${id} ${photo}`, 'sync', 'quit']);
    assert.match(attached, /attached/);
    const copy = join(work, 'copy.bin');
    const fetched = await notes('b', ['sync', 'list', `save ${id} ${copy}`, 'quit']);
    assert.match(fetched, /Groceries {2}\[attachment\]/);
    assert.ok(readFileSync(copy).equals(readFileSync(photo)), 'the attachment arrives intact on the other device');

    await notes('a', [`edit ${id}`, 'milk, eggs, bread', 'quit'], false); // offline
    await notes('b', [`edit ${id}`, 'milk, eggs, cheese', 'sync', 'quit']);
    const merged = await notes('a', ['sync', 'm', 'sync', 'list', 'quit']); // A's edit meets B's: the prompt asks
    assert.match(merged, /"Groceries" was changed on two devices/);
    assert.match(merged, /resolved\./);
    const mergedBody = /milk, eggs, bread\n {4}--- merged ---\n {4}milk, eggs, cheese|milk, eggs, cheese\n {4}--- merged ---\n {4}milk, eggs, bread/;
    assert.match(merged, mergedBody);
    const onB = await notes('b', ['sync', 'list', 'quit']);
    assert.match(onB, mergedBody, 'the resolution reaches the other device');
    assert.doesNotMatch(onB, /\[conflict\]|changed on two devices/);
  });
});
