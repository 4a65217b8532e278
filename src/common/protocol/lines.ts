/**
 * Incremental line splitting for the sync streams (fact sheet §1c–1d).
 *
 * Both sync bodies are line-framed, can be hundreds of megabytes long and arrive in arbitrary chunks. The
 * splitter holds at most one incomplete line, so memory stays bounded by the per-line limit whatever the body
 * size.
 */
/** Options of a {@link LineSplitter}. */
export interface LineSplitterOptions {
  /** Longest accepted line in bytes, terminator excluded. */
  readonly maxLineBytes: number;
  /**
   * `true`: only CRLF ends a line (the original client splits responses on `"\r\n"`, so a lone LF is data);
   * `false`: LF ends a line and one preceding CR is dropped (the original server reads with `getline`).
   */
  readonly crlfOnly: boolean;
  /** Builds the error thrown when a line exceeds {@link LineSplitterOptions.maxLineBytes}. */
  readonly tooLong: (maxLineBytes: number) => Error;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits a byte stream into lines without ever keeping more than one partial line.
 *
 * @example
 * const s = new LineSplitter({ maxLineBytes: 1024, crlfOnly: true, tooLong: () => new Error('too long') });
 * s.push(Buffer.from('[\r\n{"a":1}')); // → [<Buffer 5b>]
 * s.finish();                          // → <Buffer {"a":1}>
 */
export class LineSplitter {
  private readonly opts: LineSplitterOptions;
  private parts: Buffer[] = [];
  private size = 0;

  constructor(opts: LineSplitterOptions) {
    this.opts = opts;
  }

  /**
   * Feed a chunk; returns the lines it completed, terminators removed. The chunk must not be modified afterwards:
   * lines and the pending partial line are views of it.
   */
  push(chunk: Uint8Array): Buffer[] {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const lines: Buffer[] = [];
    let start = 0;
    let from = 0;
    while (from < buf.length) {
      const i = buf.indexOf(LF, from);
      if (i < 0) break;
      if (this.opts.crlfOnly) {
        const prev = i > start ? buf[i - 1] : this.lastPendingByte();
        if (prev !== CR) {
          // A lone LF is part of the line in CRLF mode.
          from = i + 1;
          continue;
        }
        lines.push(this.take(buf.subarray(start, i), true));
      } else {
        lines.push(this.take(buf.subarray(start, i), false));
      }
      start = i + 1;
      from = start;
    }
    if (start < buf.length) {
      const rest = buf.subarray(start);
      // +1: a CR that may turn out to be the first half of the terminator.
      if (this.size + rest.length > this.opts.maxLineBytes + 1) {
        throw this.opts.tooLong(this.opts.maxLineBytes);
      }
      // Kept by reference, like the lines returned (views of the chunks): a stream never reuses a chunk it has
      // handed on. Copying here cost more than the whole parse of a large line's bytes.
      this.parts.push(rest);
      this.size += rest.length;
    }
    return lines;
  }

  /** Bytes of the line not terminated yet. */
  get pendingBytes(): number {
    return this.size;
  }

  /**
   * The line not terminated yet, as the pieces it arrived in (views of the pushed chunks, in order). Each push adds
   * at most one piece; the list starts over with the next line.
   */
  pendingPieces(): readonly Buffer[] {
    return this.parts;
  }

  /** The bytes after the last terminator (the unterminated final line), or `null` when there are none. */
  finish(): Buffer | null {
    if (this.size === 0) return null;
    const line = Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    if (line.length > this.opts.maxLineBytes) throw this.opts.tooLong(this.opts.maxLineBytes);
    return line;
  }

  private lastPendingByte(): number | undefined {
    const last = this.parts[this.parts.length - 1];
    return last === undefined ? undefined : last[last.length - 1];
  }

  /** Complete the pending line with `tail`; `crRequired`: the line is known to end in CR (CRLF mode). */
  private take(tail: Buffer, crRequired: boolean): Buffer {
    let line: Buffer;
    if (this.size === 0) {
      line = tail;
    } else {
      line = Buffer.concat([...this.parts, tail], this.size + tail.length);
      this.parts = [];
      this.size = 0;
    }
    if (crRequired || (line.length > 0 && line[line.length - 1] === CR)) line = line.subarray(0, line.length - 1);
    if (line.length > this.opts.maxLineBytes) throw this.opts.tooLong(this.opts.maxLineBytes);
    return line;
  }
}

/** Python's `str.strip()`: ASCII whitespace only (JS `trim` would also eat Unicode spaces and BOMs). */
export function stripAsciiWhitespace(s: string): string {
  // By hand: a regex anchored at the end is tried from every position of a long content line.
  let start = 0;
  let end = s.length;
  while (start < end && isAsciiSpace(s.charCodeAt(start))) start += 1;
  while (end > start && isAsciiSpace(s.charCodeAt(end - 1))) end -= 1;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

/** {@link stripAsciiWhitespace} over bytes (ASCII whitespace is never part of a longer UTF-8 character). */
export function stripAsciiWhitespaceBytes(b: Buffer): Buffer {
  let start = 0;
  let end = b.length;
  while (start < end && isAsciiSpace(b[start]!)) start += 1;
  while (end > start && isAsciiSpace(b[end - 1]!)) end -= 1;
  return start === 0 && end === b.length ? b : b.subarray(start, end);
}

/** Space, \t, \n, \v, \f, \r: what Python 2's `str.strip()` removes. */
function isAsciiSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}
