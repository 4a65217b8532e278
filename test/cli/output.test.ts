/**
 * The CLI's rendering in process: progress as plain lines (throttled, one per phase change), error lines, byte
 * sizes. The end-to-end tests run the same code through child processes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import type { SyncProgress } from '../../src/client/sync/synchronizer.js';
import { InvalidAuthTokenError, WrongPassphraseError } from '../../src/common/errors.js';
import { CliError, UsageError, describeError, errorLine, exitCodeOf } from '../../src/cli/client/errors.js';
import { Output, formatBytes, type CliIo } from '../../src/cli/client/output.js';
import { syncProgressView, transferProgressView } from '../../src/cli/client/progress.js';

function capture(isTTY = false): { io: CliIo; err: () => string; out: () => string } {
  let err = '';
  let out = '';
  const sink = (append: (s: string) => void) => new Writable({ write(c: Buffer, _e, cb) { append(c.toString()); cb(); } });
  const stderr = Object.assign(sink((s) => { err += s; }), { isTTY });
  const stdout = Object.assign(sink((s) => { out += s; }), { isTTY });
  return { io: { stdin: new PassThrough(), stdout, stderr, env: {} }, err: () => err, out: () => out };
}

const base: SyncProgress = {
  syncId: 's', phase: 'info', docsSent: 0, docsToSend: 0, docsReceived: 0, docsToReceive: null, bytesSent: 0, bytesReceived: 0, batchesSent: 0,
};

describe('plain sync progress', () => {
  it('prints a line per phase and at most one per second in between, and the final state', () => {
    const c = capture();
    let now = 0;
    const view = syncProgressView(new Output(c.io, false), () => now);
    view.update(base);
    view.update({ ...base, phase: 'upload', docsToSend: 100 });
    for (let i = 1; i <= 100; i += 1) {
      now += 25; // 100 updates in 2.5 s
      view.update({ ...base, phase: 'upload', docsToSend: 100, docsSent: i, bytesSent: i * 1024 });
    }
    view.update({ ...base, phase: 'done', docsToSend: 100, docsSent: 100, bytesSent: 102400, docsToReceive: 0 });
    view.finish();
    const lines = c.err().trimEnd().split('\n');
    assert.equal(lines[0], 'sync info: up 0/0 docs (0 B), down 0/? docs (0 B)');
    assert.equal(lines[1], 'sync upload: up 0/100 docs (0 B), down 0/? docs (0 B)');
    assert.ok(lines.length >= 4 && lines.length <= 6, `throttled, got ${lines.length} lines:\n${c.err()}`);
    assert.equal(lines.at(-1), 'sync done: up 100/100 docs (100 KiB), down 0/0 docs (0 B)');
    assert.doesNotMatch(c.err(), /[\r\x1b]/);
    assert.equal(c.out(), '', 'progress never goes to stdout');
  });

  it('is silent with --json and --quiet', () => {
    for (const out of [(io: CliIo) => new Output(io, true), (io: CliIo) => new Output(io, false, true)]) {
      const c = capture();
      const view = syncProgressView(out(c.io));
      view.update({ ...base, phase: 'upload' });
      view.finish();
      assert.equal(c.err(), '');
    }
  });

  it('draws bars on a TTY', () => {
    const c = capture(true);
    const view = syncProgressView(new Output(c.io, false));
    view.update({ ...base, phase: 'upload', docsToSend: 4, docsSent: 2, bytesSent: 2048 });
    view.finish();
    assert.match(c.err(), /up .*2\/4 docs {2}2\.0 KiB/);
    assert.match(c.err(), /down .*0\/\? docs/);
  });
});

describe('plain transfer progress', () => {
  it('one line when a transfer starts, one when it ends, throttled between', () => {
    const c = capture();
    let now = 0;
    const view = transferProgressView(new Output(c.io, false), () => now);
    for (let done = 0; done <= 1000; done += 100) {
      now += 300;
      view.update({ direction: 'upload', blobId: 'b1', bytesDone: done * 1024, bytesTotal: 1000 * 1024 });
    }
    const lines = c.err().trimEnd().split('\n');
    assert.equal(lines[0], 'upload b1: 0 B / 1000 KiB (0%)');
    assert.equal(lines.at(-1), 'upload b1: 1000 KiB / 1000 KiB (100%)');
    assert.ok(lines.length < 11, 'throttled');
  });
});

describe('error lines', () => {
  it('name the error and say what to do, in one line', () => {
    assert.equal(errorLine(new WrongPassphraseError(), false), "WrongPassphraseError: wrong passphrase — try again or use 'soledad recover'");
    assert.match(errorLine(new InvalidAuthTokenError('line one\nline two'), false), /^InvalidAuthTokenError: [^\n]+ — [^\n]+$/);
    assert.deepEqual(JSON.parse(errorLine(new WrongPassphraseError(), true)), {
      error: 'WrongPassphraseError', code: 'WRONG_PASSPHRASE', message: 'wrong passphrase', hint: "try again or use 'soledad recover'",
    });
    assert.equal(describeError(new CliError('ProfileNotFoundError', 'no profile', 'run init')).name, 'ProfileNotFoundError');
  });

  it('exit 2 for usage errors, 1 for the rest', () => {
    assert.equal(exitCodeOf(new UsageError('bad')), 2);
    assert.equal(exitCodeOf(new WrongPassphraseError()), 1);
    assert.equal(exitCodeOf(new Error('x')), 1);
  });
});

describe('formatBytes', () => {
  it('uses binary units', () => {
    assert.deepEqual([0, 1023, 1536, 10 * 1024 * 1024, 5 * 1024 ** 3].map(formatBytes), ['0 B', '1023 B', '1.5 KiB', '10 MiB', '5.0 GiB']);
  });
});
