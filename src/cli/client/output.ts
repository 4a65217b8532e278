/**
 * Where the `soledad` command writes: results on stdout (text, or one JSON document with `--json`), notes and
 * progress on stderr, so `soledad doc get x > x.json` and `soledad sync --json | jq` stay clean.
 */
import type { Readable, Writable } from 'node:stream';
import type { Document } from '../../common/u1db/document.js';

/**
 * The streams and environment a command runs with (the process's by default; tests may pass their own).
 *
 * @example
 * const io: CliIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
 */
export interface CliIo {
  /** Standard input (JSON given as `-`, passphrase prompts on a terminal). */
  stdin: Readable & { isTTY?: boolean };
  /** Results. */
  stdout: Writable & { isTTY?: boolean; columns?: number };
  /** Notes, progress, prompts and errors. */
  stderr: Writable & { isTTY?: boolean; columns?: number };
  /** Environment (`SOLEDAD_PASSPHRASE`, `SOLEDAD_CONFIG_DIR`, `XDG_CONFIG_HOME`, `HOME`…). */
  env: NodeJS.ProcessEnv;
}

/**
 * The process's own streams.
 *
 * @example
 * const io = processIo();
 */
export function processIo(): CliIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/**
 * Writes results and notes in the mode the user asked for.
 *
 * @example
 * out.result({ id, rev }, () => `${id} ${rev}`);
 * out.note('next: soledad sync');
 */
export class Output {
  constructor(
    /** The streams. */
    readonly io: CliIo,
    /** True with `--json`: results are one JSON document, notes are not printed. */
    readonly json: boolean,
    /** True with `--quiet`: no notes, no progress. */
    readonly quiet = false,
  ) {}

  /** Print a result: `value` as JSON with `--json`, else the lines `text()` returns. */
  result(value: unknown, text: () => string | readonly string[]): void {
    if (this.json) {
      this.io.stdout.write(`${JSON.stringify(value)}\n`);
      return;
    }
    const lines = text();
    const all = typeof lines === 'string' ? [lines] : lines;
    for (const line of all) this.io.stdout.write(`${line}\n`);
  }

  /** A human note on stderr (suppressed with `--json` and `--quiet`). */
  note(line: string): void {
    if (!this.json && !this.quiet) this.io.stderr.write(`${line}\n`);
  }

  /** True when progress may be shown (not `--json`, not `--quiet`). */
  get showProgress(): boolean {
    return !this.json && !this.quiet;
  }
}

/**
 * `1.5 KiB`, `12 MiB`: sizes for people.
 *
 * @example
 * formatBytes(1536); // '1.5 KiB'
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v >= 10 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/**
 * How wide a one-line listing may be: the terminal's width, or generous when stdout is a file or a pipe.
 *
 * @example
 * docLine(doc, lineWidth(io));
 */
export function lineWidth(io: CliIo): number {
  return io.stdout.isTTY === true ? (io.stdout.columns ?? 100) : 200;
}

/**
 * A document as the CLI prints it with `--json`.
 *
 * @example
 * docJson(doc); // { id: 'D-1', rev: 'r:1', content: {…}, hasConflicts: false }
 */
export function docJson(doc: Document): { id: string; rev: string | null; content: unknown; hasConflicts: boolean; deleted: boolean } {
  return { id: doc.docId, rev: doc.rev, content: doc.content, hasConflicts: doc.hasConflicts, deleted: doc.content === null };
}

/**
 * One line per document: id, rev, a conflict marker and the content cut to fit.
 *
 * @example
 * docLine(doc); // 'D-1  r:1  {"subject":"hi"}'
 */
export function docLine(doc: Document, width = 100): string {
  const json = doc.content === null ? '(deleted)' : JSON.stringify(doc.content);
  const head = `${doc.docId}  ${doc.rev ?? '-'}${doc.hasConflicts ? '  [conflicts]' : ''}  `;
  const room = Math.max(20, width - head.length);
  return head + (json.length > room ? `${json.slice(0, room - 1)}…` : json);
}
