/**
 * Every `soledad` command answers `--help` with exit code 0, its usage line and at least one example. The list of
 * commands comes from the program itself, so a command added without help text fails here.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/client/program.js';
import { processIo } from '../../src/cli/client/output.js';
import { spawn } from 'node:child_process';
import { SOLEDAD_CLI, runSoledad } from './run-cli.js';

function commandPaths(cmd: Command, prefix: string[] = []): string[][] {
  const out: string[][] = [prefix];
  for (const sub of cmd.commands) {
    if (sub.name() === 'help') continue; // commander's own `help [command]`
    out.push(...commandPaths(sub, [...prefix, sub.name()]).filter((p) => p.length > 0));
  }
  return out;
}

async function inBatches<T, R>(items: readonly T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += size) results.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return results;
}

describe('soledad --help', () => {
  const paths = commandPaths(buildProgram(processIo()));

  it('knows the documented commands', () => {
    const names = new Set(paths.map((p) => p.join(' ')));
    for (const expected of [
      'init', 'recover', 'sync', 'status', 'passphrase change', 'recovery-code create',
      'doc create', 'doc get', 'doc put', 'doc delete', 'doc list', 'doc conflicts', 'doc resolve',
      'index create', 'index list', 'index delete', 'index query', 'index keys', 'index count', 'index range',
      'blob put', 'blob get', 'blob list', 'blob flags', 'blob delete', 'blob sync', 'attach put', 'attach get',
      'incoming list', 'incoming process',
    ]) {
      assert.ok(names.has(expected), `missing command: soledad ${expected}`);
    }
  });

  it('every command prints help with an example and exits 0', async () => {
    const results = await inBatches(paths, 6, async (p) => ({ p, r: await runSoledad([...p, '--help']) }));
    for (const { p, r } of results) {
      const name = ['soledad', ...p].join(' ');
      assert.equal(r.code, 0, `${name} --help exited ${r.code}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: ${name.replace(/[-]/g, '\\-')}( |$)`, 'm'), `${name}: usage line`);
      assert.match(r.stdout, /\nExamples?:\n {2}\$ soledad /, `${name} --help has no example`);
      assert.equal(r.stderr, '', `${name} --help wrote to stderr`);
    }
  });

  it('a reader that stops early (soledad --help | head -1) ends it quietly with exit code 0', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', SOLEDAD_CLI, 'incoming', 'list', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reading end is closed before the command writes its help
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(stderr, '', 'no EPIPE stack trace');
    assert.equal(code, 0);
  });

  it('--version prints the version and exits 0; no command is a usage error (2)', async () => {
    const v = await runSoledad(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+/);
    const none = await runSoledad([]);
    assert.equal(none.code, 2);
    const unknown = await runSoledad(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^UsageError: unknown command 'frobnicate'/);
  });
});
