/**
 * Progress for `soledad sync` and blob transfers: bars on a terminal (cli-progress), plain lines otherwise (a log
 * file or a CI console gets one line per phase change and at most one per second in between), nothing with
 * `--json` or `--quiet`. Always on stderr.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { SyncProgress } from '../../client/sync/synchronizer.js';
import { formatBytes, type Output } from './output.js';

/** Shortest pause between two plain progress lines about the same thing (ms). */
export const PLAIN_INTERVAL_MS = 1000;

/**
 * Receives sync progress events.
 *
 * @example
 * const view = syncProgressView(out);
 * sol.on('sync-progress', (p) => view.update(p));
 * try { await sol.sync(); } finally { view.finish(); }
 */
export interface SyncProgressView {
  /** Show a new state. */
  update(p: SyncProgress): void;
  /** Stop drawing (prints the last state as a plain line). */
  finish(): void;
}

/**
 * One plain line describing a sync state.
 *
 * @example
 * syncLine(p); // 'sync upload: up 3/10 docs (1.2 KiB), down 0/? docs (0 B)'
 */
export function syncLine(p: SyncProgress): string {
  const down = p.docsToReceive === null ? '?' : String(p.docsToReceive);
  return `sync ${p.phase}: up ${p.docsSent}/${p.docsToSend} docs (${formatBytes(p.bytesSent)}), ` +
    `down ${p.docsReceived}/${down} docs (${formatBytes(p.bytesReceived)})`;
}

class PlainSyncView implements SyncProgressView {
  private lastPhase: string | undefined;
  private lastLine = '';
  private lastAt = 0;
  private latest: SyncProgress | undefined;

  constructor(private readonly write: (line: string) => void, private readonly now: () => number) {}

  update(p: SyncProgress): void {
    this.latest = p;
    const line = syncLine(p);
    const t = this.now();
    if (p.phase !== this.lastPhase || (line !== this.lastLine && t - this.lastAt >= PLAIN_INTERVAL_MS)) {
      this.emit(line, p.phase, t);
    }
  }

  finish(): void {
    if (this.latest !== undefined) {
      const line = syncLine(this.latest);
      if (line !== this.lastLine) this.emit(line, this.latest.phase, this.now());
    }
  }

  private emit(line: string, phase: string, t: number): void {
    this.write(line);
    this.lastLine = line;
    this.lastPhase = phase;
    this.lastAt = t;
  }
}

class BarSyncView implements SyncProgressView {
  private readonly multi: MultiBar;
  private readonly up: SingleBar;
  private readonly down: SingleBar;

  constructor(out: Output) {
    this.multi = new MultiBar({
      stream: out.io.stderr,
      format: ' {dir} {bar} {done}/{totalText} docs  {bytes}  {phase}',
      hideCursor: true,
      clearOnComplete: false,
      barsize: 24,
      fps: 10,
    }, Presets.shades_classic);
    this.up = this.multi.create(1, 0, { dir: 'up  ', done: '0', totalText: '?', bytes: formatBytes(0), phase: 'info' });
    this.down = this.multi.create(1, 0, { dir: 'down', done: '0', totalText: '?', bytes: formatBytes(0), phase: '' });
  }

  update(p: SyncProgress): void {
    BarSyncView.draw(this.up, p.docsSent, p.docsToSend, { bytes: formatBytes(p.bytesSent), phase: p.phase });
    BarSyncView.draw(this.down, p.docsReceived, p.docsToReceive, { bytes: formatBytes(p.bytesReceived), phase: '' });
  }

  /** A bar of `done` out of `total` documents; nothing to do (total 0) draws as complete. */
  private static draw(bar: SingleBar, done: number, total: number | null, payload: { bytes: string; phase: string }): void {
    const known = total ?? 0;
    const barTotal = Math.max(1, known, done);
    bar.setTotal(barTotal);
    bar.update(total === 0 ? barTotal : done, { ...payload, done: String(done), totalText: total === null ? '?' : String(total) });
  }

  finish(): void {
    this.multi.stop();
  }
}

class NoView implements SyncProgressView {
  update(): void {}
  finish(): void {}
}

/**
 * The right sync view for where stderr goes.
 *
 * @example
 * const view = syncProgressView(out);
 */
export function syncProgressView(out: Output, now: () => number = Date.now): SyncProgressView {
  if (!out.showProgress) return new NoView();
  if (out.io.stderr.isTTY === true) return new BarSyncView(out);
  return new PlainSyncView((line) => out.io.stderr.write(`${line}\n`), now);
}

/** One blob transfer's state, as the blob manager reports it. */
export interface TransferState {
  /** Which way. */
  direction: 'upload' | 'download';
  /** The blob. */
  blobId: string;
  /** Bytes moved so far. */
  bytesDone: number;
  /** Bytes in all, when known. */
  bytesTotal: number | undefined;
}

/**
 * Receives blob transfer progress (several transfers may run at once).
 *
 * @example
 * const view = transferProgressView(out);
 * blobs.on('progress', (p) => view.update(p));
 */
export interface TransferProgressView {
  /** Show a transfer's new state. */
  update(p: TransferState): void;
  /** Stop drawing. */
  finish(): void;
}

/**
 * One plain line about a transfer.
 *
 * @example
 * transferLine({ direction: 'upload', blobId: 'b1', bytesDone: 512, bytesTotal: 1024 });
 * // 'upload b1: 512 B / 1.0 KiB (50%)'
 */
export function transferLine(p: TransferState): string {
  if (p.bytesTotal === undefined) return `${p.direction} ${p.blobId}: ${formatBytes(p.bytesDone)}`;
  const pct = p.bytesTotal === 0 ? 100 : Math.floor((100 * p.bytesDone) / p.bytesTotal);
  return `${p.direction} ${p.blobId}: ${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)} (${pct}%)`;
}

function isDone(p: TransferState): boolean {
  return p.bytesTotal !== undefined && p.bytesDone >= p.bytesTotal;
}

class PlainTransferView implements TransferProgressView {
  private readonly seen = new Map<string, { at: number; done: boolean }>();

  constructor(private readonly write: (line: string) => void, private readonly now: () => number) {}

  update(p: TransferState): void {
    const key = `${p.direction}:${p.blobId}`;
    const prev = this.seen.get(key);
    const t = this.now();
    const done = isDone(p);
    if (prev === undefined || (done && !prev.done) || (!done && t - prev.at >= PLAIN_INTERVAL_MS)) {
      this.write(transferLine(p));
      this.seen.set(key, { at: t, done });
    }
  }

  finish(): void {}
}

class BarTransferView implements TransferProgressView {
  private readonly multi: MultiBar;
  private readonly bars = new Map<string, SingleBar>();

  constructor(out: Output) {
    this.multi = new MultiBar({
      stream: out.io.stderr,
      format: ' {dir} {bar} {percentage}%  {done}/{totalText}  {blobId}',
      hideCursor: true,
      clearOnComplete: false,
      barsize: 24,
      fps: 10,
    }, Presets.shades_classic);
  }

  update(p: TransferState): void {
    const key = `${p.direction}:${p.blobId}`;
    const total = Math.max(1, p.bytesTotal ?? p.bytesDone);
    const payload = {
      dir: p.direction === 'upload' ? 'up  ' : 'down',
      blobId: p.blobId,
      done: formatBytes(p.bytesDone),
      totalText: p.bytesTotal === undefined ? '?' : formatBytes(p.bytesTotal),
    };
    let bar = this.bars.get(key);
    if (bar === undefined) {
      bar = this.multi.create(total, p.bytesDone, payload);
      this.bars.set(key, bar);
    }
    bar.setTotal(total);
    bar.update(p.bytesDone, payload);
  }

  finish(): void {
    this.multi.stop();
  }
}

class NoTransferView implements TransferProgressView {
  update(): void {}
  finish(): void {}
}

/**
 * The right transfer view for where stderr goes.
 *
 * @example
 * const view = transferProgressView(out);
 */
export function transferProgressView(out: Output, now: () => number = Date.now): TransferProgressView {
  if (!out.showProgress) return new NoTransferView();
  if (out.io.stderr.isTTY === true) return new BarTransferView(out);
  return new PlainTransferView((line) => out.io.stderr.write(`${line}\n`), now);
}
