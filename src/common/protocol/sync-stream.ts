/**
 * The Soledad 0.10 document sync wire format (fact sheet §1a–1d): typed messages with their serializers and
 * parsers side by side, used by both the client and the server.
 *
 * Shapes on the wire (CRLF = `\r\n`):
 * - sync info (`GET …/sync-from/<src>`): one JSON object, then CRLF;
 * - upload (`POST`, `application/x-soledad-sync-put`): `[` CRLF header `,` CRLF meta `,` CRLF content `,` CRLF …
 *   CRLF `]`, no CRLF after the final `]`; every document's content is sent twice (inside the meta line, then raw);
 * - upload response (`application/x-soledad-sync-response`): `[` CRLF object CRLF `]` CRLF;
 * - download request (`application/x-soledad-sync-get`): `[` CRLF header CRLF `]`;
 * - download response (`application/x-u1db-sync-response`): `[` CRLF meta (`,` CRLF info `,` CRLF content)* CRLF
 *   `]` CRLF, an empty content line meaning a deleted document.
 */
import { isUtf8 } from 'node:buffer';
import { BadRequestError, BrokenSyncStreamError, InvalidContentError, type SoledadError } from '../errors.js';
import { decodeUtf8, utf8Text } from '../utf8.js';
import { LineSplitter, stripAsciiWhitespace, stripAsciiWhitespaceBytes } from './lines.js';

/** `content-type` of plain JSON requests and responses (sync info, record sync info, errors). */
export const CONTENT_TYPE_JSON = 'application/json';
/** `content-type` of an upload (`POST …/sync-from/<src>` carrying documents). */
export const CONTENT_TYPE_SYNC_PUT = 'application/x-soledad-sync-put';
/** `content-type` of a download request (`POST …/sync-from/<src>` asking for changes). */
export const CONTENT_TYPE_SYNC_GET = 'application/x-soledad-sync-get';
/** Prefix the server accepts for sync stream requests (the original dispatches on it). */
export const CONTENT_TYPE_SYNC_PREFIX = 'application/x-soledad-sync';
/** `content-type` of the upload response. */
export const CONTENT_TYPE_SYNC_PUT_RESPONSE = 'application/x-soledad-sync-response';
/** `content-type` of the download response (the u1db name, kept by Soledad 0.10). */
export const CONTENT_TYPE_SYNC_GET_RESPONSE = 'application/x-u1db-sync-response';
/** Longest accepted line of a sync stream: 200 MiB, as the original server (`max_entry_size`). */
export const MAX_SYNC_LINE_BYTES = 200 * 1024 * 1024;
/**
 * The original server applies staged uploaded documents once this many content bytes are pending
 * (`ENTRY_CACHE_SIZE`). Ours applies smaller slices as they arrive (see `server/routes/sync.ts`); nothing on the
 * wire depends on either.
 */
export const SYNC_STAGING_BYTES = 8 * 1024 * 1024;

const CRLF = '\r\n';

// ---------------------------------------------------------------------------------------------------------------
// §1a sync info
// ---------------------------------------------------------------------------------------------------------------

/**
 * Answer of `GET …/sync-from/<src>`: the target's current state and what it last recorded for this source.
 *
 * @example
 * const info: SyncInfo = { target_replica_uid: 'abc', target_replica_generation: 3,
 *   target_replica_transaction_id: 'T-1', source_replica_uid: 'def', source_replica_generation: 0,
 *   source_transaction_id: '' };
 */
export interface SyncInfo {
  /** Replica uid of the server's database. */
  target_replica_uid: string;
  /** Current generation of the server's database. */
  target_replica_generation: number;
  /** Transaction id of that generation (`""` at generation 0). */
  target_replica_transaction_id: string;
  /** The client's replica uid, echoed back. */
  source_replica_uid: string;
  /** Source generation the server last recorded for this client (0 if never). */
  source_replica_generation: number;
  /** Transaction id recorded with it (`""` if never). */
  source_transaction_id: string;
}

/**
 * Serialize sync info: one JSON object and a trailing CRLF.
 *
 * @example
 * encodeSyncInfo(info); // '{"target_replica_uid":"abc",…}\r\n'
 */
export function encodeSyncInfo(info: SyncInfo): string {
  return JSON.stringify({
    target_replica_uid: info.target_replica_uid,
    target_replica_generation: info.target_replica_generation,
    target_replica_transaction_id: info.target_replica_transaction_id,
    source_replica_uid: info.source_replica_uid,
    source_replica_generation: info.source_replica_generation,
    source_transaction_id: info.source_transaction_id,
  }) + CRLF;
}

/**
 * Parse a sync info response (client side); malformed input is a {@link BrokenSyncStreamError}.
 *
 * @example
 * const info = parseSyncInfo(await res.body.text());
 */
export function parseSyncInfo(text: string): SyncInfo {
  const obj = parseJsonObjectOr(text, broken, 'sync info');
  return {
    target_replica_uid: reqString(obj, 'target_replica_uid', broken),
    target_replica_generation: reqGeneration(obj, 'target_replica_generation', broken),
    target_replica_transaction_id: reqString(obj, 'target_replica_transaction_id', broken),
    source_replica_uid: reqString(obj, 'source_replica_uid', broken),
    source_replica_generation: reqGeneration(obj, 'source_replica_generation', broken),
    source_transaction_id: reqString(obj, 'source_transaction_id', broken),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// §1b record sync info
// ---------------------------------------------------------------------------------------------------------------

/**
 * Body of `PUT …/sync-from/<src>`: the source generation the client wants the server to remember.
 *
 * @example
 * const rec: RecordSyncInfo = { generation: 12, transaction_id: 'T-ab' };
 */
export interface RecordSyncInfo {
  /** Source generation. */
  generation: number;
  /** Source transaction id at that generation. */
  transaction_id: string;
}

/** The fixed answer to a successful `PUT …/sync-from/<src>`. */
export const RECORD_SYNC_INFO_OK = '{"ok":true}\r\n';

/**
 * Serialize a record-sync-info body.
 *
 * @example
 * encodeRecordSyncInfo({ generation: 2, transaction_id: 'T-x' }); // '{"generation":2,"transaction_id":"T-x"}'
 */
export function encodeRecordSyncInfo(rec: RecordSyncInfo): string {
  return JSON.stringify({ generation: rec.generation, transaction_id: rec.transaction_id });
}

/**
 * Parse a record-sync-info body (server side). Missing or extra keys are a {@link BadRequestError}, like the
 * original's `http_method(content_as_args=True)`.
 *
 * @example
 * const { generation, transaction_id } = parseRecordSyncInfo(body);
 */
export function parseRecordSyncInfo(text: string): RecordSyncInfo {
  const obj = parseJsonObjectOr(text, badRequest, 'sync record');
  onlyKeys(obj, ['generation', 'transaction_id'], badRequest);
  return {
    generation: reqGeneration(obj, 'generation', badRequest),
    transaction_id: reqString(obj, 'transaction_id', badRequest),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// §1c upload
// ---------------------------------------------------------------------------------------------------------------

/**
 * First line after `[` of both sync POST bodies.
 *
 * @example
 * const header: SyncHeader = { last_known_generation: 0, last_known_trans_id: '', sync_id: randomUUID(),
 *   ensure: false };
 */
export interface SyncHeader {
  /** Target generation the client last saw (0 if never). */
  last_known_generation: number;
  /** Transaction id of that generation (`""` if never; a `null` on the wire reads as `""`). */
  last_known_trans_id: string;
  /** Identifies one sync (upload and download share it), a dashed uuid4 in the original client. */
  sync_id: string;
  /** Ask the server to create the user database if it does not exist. */
  ensure: boolean;
}

/**
 * One uploaded document: the meta line (which also carries the content) plus the raw content line.
 *
 * @example
 * const entry: SyncPutEntry = { id: 'D-1', rev: 'r1:1', content: '{"raw": "…"}', gen: 5, trans_id: 'T-5',
 *   number_of_docs: 1, doc_idx: 1 };
 */
export interface SyncPutEntry {
  /** Document id. */
  id: string;
  /** Revision being uploaded. */
  rev: string;
  /** Encrypted content string, `null` for a deleted document. */
  content: string | null;
  /** Source generation of this change. */
  gen: number;
  /** Source transaction id of this change. */
  trans_id: string;
  /** Number of documents in this upload. */
  number_of_docs: number;
  /** 1-based position of this document in the upload. */
  doc_idx: number;
}

/**
 * A document to upload: its content may also be given as the (ASCII or UTF-8) bytes of its text, as
 * `encryptDocContentBytes` makes it.
 */
export type SyncPutEntryOut = Omit<SyncPutEntry, 'content'> & { content: string | Uint8Array | null };

/** An item produced by {@link SyncPutParser}: the header first, then each document. */
export type SyncPutItem = { type: 'header'; header: SyncHeader } | { type: 'doc'; entry: SyncPutEntry };

/**
 * An uploaded document as {@link SyncPutParser.keepingContentBytes} parses it: content read from its raw line is
 * that line's bytes (checked to be UTF-8), not decoded.
 */
export type SyncPutEntryIn = Omit<SyncPutEntry, 'content'> & { content: string | Buffer | null };

/** An item of {@link SyncPutParser.keepingContentBytes}. */
export type SyncPutItemIn = { type: 'header'; header: SyncHeader } | { type: 'doc'; entry: SyncPutEntryIn };

/** Options of {@link encodeSyncPut}. */
export interface EncodeSyncPutOptions {
  /**
   * Repeat each document's content inside its meta line, as the original client does (default true). With
   * false the content is sent once, on its raw line, which every Soledad server reads the same way (the meta
   * line's `content` key is optional, fact sheet §1c): half the bytes to send, encode and parse.
   */
  contentInMeta?: boolean;
  /**
   * The caller vouches that no content holds a CR or LF (default false: every content is scanned, and one that does
   * throws `InvalidContentError`). True for ciphertext from `encryptDocContent`, which is base64 in a fixed frame:
   * the scan cost a client about 1–2 ms per 2 MB uploaded.
   */
  contentFramed?: boolean;
}

/**
 * Serialize an upload body as §1c, lazily (a piece or two per document) so it can be streamed. Content given as
 * bytes is yielded as those bytes, after its meta line's text.
 *
 * @example
 * const body = Readable.from(encodeSyncPut(header, entries, { contentInMeta: false }));
 * await request(url, { method: 'POST', body, headers: { 'content-type': CONTENT_TYPE_SYNC_PUT } });
 */
export function* encodeSyncPut(
  header: SyncHeader,
  entries: Iterable<SyncPutEntryOut>,
  options: EncodeSyncPutOptions = {},
): Generator<string | Uint8Array> {
  const contentInMeta = options.contentInMeta ?? true;
  const check = options.contentFramed !== true;
  yield `[${CRLF}${encodeHeader(header)}`;
  for (const e of entries) {
    const content = e.content;
    if (check) assertFramable(content);
    const meta = contentInMeta
      ? JSON.stringify({
        id: e.id, rev: e.rev, content: typeof content === 'string' || content === null ? content
          : Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString('utf8'),
        gen: e.gen, trans_id: e.trans_id, number_of_docs: e.number_of_docs, doc_idx: e.doc_idx,
      })
      : JSON.stringify({
        id: e.id, rev: e.rev, gen: e.gen, trans_id: e.trans_id, number_of_docs: e.number_of_docs, doc_idx: e.doc_idx,
      });
    if (typeof content === 'string' || content === null) {
      yield `,${CRLF}${meta},${CRLF}${content ?? ''}`;
    } else {
      yield `,${CRLF}${meta},${CRLF}`;
      yield content;
    }
  }
  yield `${CRLF}]`;
}

/** Options of the incremental parsers. */
export interface SyncParserOptions {
  /** Longest accepted line, default {@link MAX_SYNC_LINE_BYTES}. */
  maxLineBytes?: number;
}

type PutState = 'open' | 'header' | 'meta' | 'content' | 'done' | 'failed';

const HEADER_KEYS = ['last_known_generation', 'last_known_trans_id', 'sync_id', 'ensure'] as const;
const PUT_META_KEYS = ['id', 'rev', 'content', 'gen', 'trans_id', 'number_of_docs', 'doc_idx'] as const;

/**
 * Incremental parser of an upload body (server side). It keeps at most one line in memory and fails with
 * {@link BadRequestError} on any framing error: first line not `[`, bad header, missing or extra comma, bad JSON,
 * missing or extra keys, a missing content line, data after `]`, no final `]`, invalid UTF-8, a line over the
 * limit. Lines are stripped of ASCII whitespace and may end in LF or CRLF, as in the original server.
 *
 * @example
 * const parser = new SyncPutParser();
 * for await (const chunk of request.raw) for (const item of parser.push(chunk)) handle(item);
 * for (const item of parser.end()) handle(item);
 */
export class SyncPutParser<I extends SyncPutItem | SyncPutItemIn = SyncPutItem> {
  private readonly lines: LineSplitter;
  private state: PutState = 'open';
  private comma = false;
  private pendingMeta: { meta: Omit<SyncPutEntry, 'content'>; content?: string | null } | null = null;
  private contentBytes = false;

  /**
   * A parser that hands each content line over as its bytes instead of a string: for a server that stores them
   * as they are, where decoding a large document only for it to be encoded again would cost two passes over it.
   *
   * @example
   * const parser = SyncPutParser.keepingContentBytes();
   */
  static keepingContentBytes(options: SyncParserOptions = {}): SyncPutParser<SyncPutItemIn> {
    const parser = new SyncPutParser<SyncPutItemIn>(options);
    parser.contentBytes = true;
    return parser;
  }

  constructor(options: SyncParserOptions = {}) {
    this.lines = new LineSplitter({
      maxLineBytes: options.maxLineBytes ?? MAX_SYNC_LINE_BYTES,
      crlfOnly: false,
      tooLong: (max) => new BadRequestError(`A line of the sync stream is longer than ${max} bytes`),
    });
  }

  /** Feed a chunk of the body; returns the items it completed. */
  push(chunk: Uint8Array | string): I[] {
    this.assertUsable();
    const out: I[] = [];
    try {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      for (const line of this.lines.push(buf)) this.line(line, out);
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
    return out;
  }

  /** Signal the end of the body; returns the last items, or throws if the stream is incomplete. */
  end(): I[] {
    this.assertUsable();
    const out: I[] = [];
    try {
      const last = this.lines.finish();
      if (last !== null) this.line(last, out);
      if (this.state !== 'done') throw new BadRequestError('The sync stream ended before its final "]"');
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
    return out;
  }

  private assertUsable(): void {
    if (this.state === 'failed') throw new BadRequestError('The sync stream was already rejected');
  }

  private line(raw: Buffer, out: I[]): void {
    if (this.state === 'content') {
      this.contentLine(raw, out);
      return;
    }
    const decoded = decodeUtf8(raw);
    if (decoded === null) throw notUtf8();
    const line = stripAsciiWhitespace(decoded);
    switch (this.state) {
      case 'open':
        if (line !== '[') throw new BadRequestError('The sync stream must start with "["');
        this.state = 'header';
        return;
      case 'header': {
        const [text, comma] = stripComma(line);
        out.push({ type: 'header', header: parseHeaderObject(text) } as I);
        this.comma = comma;
        this.state = 'meta';
        return;
      }
      case 'meta': {
        if (line === ']') {
          if (this.comma) throw new BadRequestError('Extra comma before the final "]"');
          this.state = 'done';
          return;
        }
        if (!this.comma) throw new BadRequestError('Missing comma between sync stream entries');
        const [text, comma] = stripComma(line);
        if (!comma) throw new BadRequestError('Missing comma after a document entry');
        this.pendingMeta = parsePutMeta(text);
        this.state = 'content';
        return;
      }
      case 'done':
        if (line !== '') throw new BadRequestError('Data after the final "]" of the sync stream');
        return;
      case 'failed':
        throw new BadRequestError('The sync stream was already rejected');
    }
  }

  /**
   * A document's content line, read as bytes: the bulk of an upload, which only needs to be checked (UTF-8, no
   * line break) and stripped of its framing, not decoded, when the content is kept as bytes.
   */
  private contentLine(raw: Buffer, out: I[]): void {
    if (!isUtf8(raw)) throw notUtf8();
    let text = stripAsciiWhitespaceBytes(raw);
    if (text.length === 1 && text[0] === 0x5d) throw new BadRequestError('Missing content line of the last document');
    const comma = text.length > 0 && text[text.length - 1] === 0x2c;
    if (comma) text = text.subarray(0, text.length - 1);
    const pending = this.pendingMeta!;
    // The original pre-fills content from the raw line, then overlays the meta line: the meta value wins.
    let content: string | Buffer | null = pending.content !== undefined ? pending.content : text.length === 0 ? null : text;
    if (content !== null && (typeof content === 'string' ? hasLineBreak(content) : content.includes(0x0d))) {
      // Could never be sent back inside a line-framed download. (A raw line has no LF: lines end there.)
      throw new BadRequestError('Document content contains a line break');
    }
    if (Buffer.isBuffer(content) && !this.contentBytes) content = utf8Text(content);
    out.push({ type: 'doc', entry: { ...pending.meta, content } } as I);
    this.pendingMeta = null;
    this.comma = comma;
    this.state = 'meta';
  }
}

function notUtf8(): BadRequestError {
  return new BadRequestError('The sync stream is not valid UTF-8');
}

/**
 * Serialize the upload response: `[` CRLF object CRLF `]` CRLF.
 *
 * @example
 * reply.type(CONTENT_TYPE_SYNC_PUT_RESPONSE).send(encodeSyncPutResponse({ new_generation: 4,
 *   new_transaction_id: 'T-4' }));
 */
export function encodeSyncPutResponse(r: SyncPutResponse): string {
  const obj: Record<string, unknown> = { new_generation: r.new_generation, new_transaction_id: r.new_transaction_id };
  if (r.replica_uid !== undefined) obj['replica_uid'] = r.replica_uid;
  if (r.nothing_to_download === true) obj['nothing_to_download'] = true;
  return `[${CRLF}${JSON.stringify(obj)}${CRLF}]${CRLF}`;
}

/**
 * Answer to an upload: the target's generation after inserting the documents.
 *
 * @example
 * const { new_generation } = parseSyncPutResponse(text);
 */
export interface SyncPutResponse {
  /** Target generation after the upload. */
  new_generation: number;
  /** Target transaction id at that generation. */
  new_transaction_id: string;
  /** Target replica uid, sent when the request had `ensure: true`. */
  replica_uid?: string;
  /**
   * True when a download in the same sync would send nothing right now: every change since the request's
   * `last_known_generation` is a document this sync uploaded and the server stored as sent. An addition of this
   * server (original servers never send it; original clients ignore it): the client skips that request.
   */
  nothing_to_download?: boolean;
}

/**
 * Parse the upload response (client side); like the original client it reads the first array element.
 * Malformed input is a {@link BrokenSyncStreamError}.
 *
 * @example
 * parseSyncPutResponse('[\r\n{"new_generation":1,"new_transaction_id":"T-1"}\r\n]\r\n');
 */
export function parseSyncPutResponse(text: string): SyncPutResponse {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new BrokenSyncStreamError('The upload response is not JSON', { cause });
  }
  if (!Array.isArray(value) || value.length < 1 || !isObject(value[0])) {
    throw new BrokenSyncStreamError('The upload response is not a list holding an object');
  }
  const obj = value[0];
  if ('error' in obj) throw new BrokenSyncStreamError(`The server reported an error: ${describe(obj['error'])}`);
  const out: SyncPutResponse = {
    new_generation: reqGeneration(obj, 'new_generation', broken),
    new_transaction_id: reqString(obj, 'new_transaction_id', broken),
  };
  const replica = optString(obj, 'replica_uid', broken);
  if (replica !== undefined) out.replica_uid = replica;
  if (obj['nothing_to_download'] === true) out.nothing_to_download = true;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// §1d download
// ---------------------------------------------------------------------------------------------------------------

/**
 * Serialize a download request: `[` CRLF header CRLF `]`.
 *
 * @example
 * encodeSyncGetRequest({ last_known_generation: 3, last_known_trans_id: 'T-3', sync_id: id, ensure: false });
 */
export function encodeSyncGetRequest(header: SyncHeader): string {
  return `[${CRLF}${encodeHeader(header)}${CRLF}]`;
}

/**
 * Parse a download request (server side); anything but `[`, one header line and `]` (each optionally
 * surrounded by ASCII whitespace) is a {@link BadRequestError}.
 *
 * @example
 * const header = parseSyncGetRequest('[\r\n{"last_known_generation":0,…}\r\n]');
 */
export function parseSyncGetRequest(text: string): SyncHeader {
  const parser = new SyncPutParser();
  const items = [...parser.push(text), ...parser.end()];
  const first = items[0];
  if (items.length !== 1 || first === undefined || first.type !== 'header') {
    throw new BadRequestError('A download request carries a header and nothing else');
  }
  return first.header;
}

/**
 * First entry of a download response.
 *
 * @example
 * const meta: SyncGetMeta = { new_generation: 9, new_transaction_id: 'T-9', number_of_changes: 2 };
 */
export interface SyncGetMeta {
  /** Target generation the changes bring the client up to. */
  new_generation: number;
  /** Target transaction id at that generation. */
  new_transaction_id: string;
  /** Number of document entries that follow. */
  number_of_changes: number;
  /** Target replica uid, sent when the request had `ensure: true`. */
  replica_uid?: string;
}

/**
 * One downloaded document: its info line and its content line.
 *
 * @example
 * const e: SyncGetEntry = { id: 'D-1', rev: 'r1:2', gen: 7, trans_id: 'T-7', content: '{"raw": "…"}' };
 */
export interface SyncGetEntry {
  /** Document id. */
  id: string;
  /** Current revision on the server. */
  rev: string;
  /** Target generation of this change. */
  gen: number;
  /** Target transaction id of this change. */
  trans_id: string;
  /** Stored content string, `null` for a deleted document. */
  content: string | null;
}

/** An item produced by {@link SyncGetResponseParser}: the meta first, then each document. */
export type SyncGetItem = { type: 'meta'; meta: SyncGetMeta } | { type: 'doc'; entry: SyncGetEntry };

/** A downloaded document's info line. */
export type SyncGetEntryInfo = Omit<SyncGetEntry, 'content'>;

/**
 * Decodes one large content line of a download while it arrives (see {@link SyncGetParserOptions}); `R` is what
 * it makes of the content.
 */
export interface ContentLineStream<R> {
  /** The next bytes of the line, in order from its first; `false`: it gave up, and the line is parsed whole. */
  push(bytes: Buffer): boolean;
  /** The whole content (the line without its structural comma): the result, or `null` to have it parsed whole. */
  finish(content: Buffer): R | null;
  /** The line will not be finished (the stream failed): let go of what it holds. */
  discard(): void;
}

/** A document whose content line a {@link ContentLineStream} decoded: its info, its content's length and the result. */
export interface SyncGetStreamed<R> {
  type: 'streamed';
  info: SyncGetEntryInfo;
  contentBytes: number;
  result: R;
}

/** What a {@link SyncGetResponseParser} produces: with a content stream, some documents come decoded. */
export type SyncGetParsed<R = never> = [R] extends [never] ? SyncGetItem : SyncGetItem | SyncGetStreamed<R>;

/** Options of a {@link SyncGetResponseParser}. */
export interface SyncGetParserOptions<R> extends SyncParserOptions {
  /**
   * A content line that has grown to `minBytes` without ending yet is handed, piece by piece as it arrives, to the
   * stream `open` makes for its document (`null`: none). If the stream's `finish` answers, the document comes as a
   * `streamed` item, without its content ever being decoded as text.
   */
  streamContent?: { minBytes: number; open: (info: SyncGetEntryInfo) => ContentLineStream<R> | null };
}

/** Opening of a download response: `[` CRLF meta. */
export function encodeSyncGetResponseStart(meta: SyncGetMeta): string {
  const obj: Record<string, unknown> = {
    new_generation: meta.new_generation,
    new_transaction_id: meta.new_transaction_id,
    number_of_changes: meta.number_of_changes,
  };
  if (meta.replica_uid !== undefined) obj['replica_uid'] = meta.replica_uid;
  return `[${CRLF}${JSON.stringify(obj)}`;
}

/** One document of a download response: `,` CRLF info `,` CRLF content. */
export function encodeSyncGetResponseEntry(e: SyncGetEntry): string {
  assertFramable(e.content);
  return `,${CRLF}${encodeEntryInfo(e)},${CRLF}${e.content ?? ''}`;
}

/** A download entry's info line. */
function encodeEntryInfo(e: Omit<SyncGetEntry, 'content'>): string {
  return JSON.stringify({ id: e.id, rev: e.rev, gen: e.gen, trans_id: e.trans_id });
}

/** Closing of a download response. */
export const SYNC_GET_RESPONSE_END = `${CRLF}]${CRLF}`;

/**
 * Serialize a download response exactly as §1d, lazily.
 *
 * @example
 * [...encodeSyncGetResponse({ new_generation: 0, new_transaction_id: '', number_of_changes: 0 }, [])].join('');
 * // '[\r\n{"new_generation":0,"new_transaction_id":"","number_of_changes":0}\r\n]\r\n'
 */
export function* encodeSyncGetResponse(meta: SyncGetMeta, entries: Iterable<SyncGetEntry>): Generator<string> {
  yield encodeSyncGetResponseStart(meta);
  for (const e of entries) yield encodeSyncGetResponseEntry(e);
  yield SYNC_GET_RESPONSE_END;
}

/**
 * Characters of a download response the server hands to the connection at a time. One write per document made a
 * 5 KB document cost its own HTTP chunk, TLS record and system call on the server, and its own read, stream event
 * and parser call on the client; pieces of 64 KiB took about a tenth off a 10,000-document initial sync.
 */
export const SYNC_GET_PIECE_CHARS = 64 * 1024;

/** A document as {@link encodeSyncGetResponseAsync} sends it: its content as a string or as its UTF-8 bytes. */
export type SyncGetEntryOut = Omit<SyncGetEntry, 'content'> & { content: string | Uint8Array | null };

/**
 * {@link encodeSyncGetResponse} over an async source (a backend reading documents lazily), in pieces of about
 * `maxPieceChars` (whole entries joined; a larger entry is a piece of its own). Content given as bytes (a large
 * document, as the embedded engine reads it) is a piece of its own, sent as it is: as a string it would be
 * measured and encoded again on its way out.
 *
 * @example
 * reply.send(Readable.from(encodeSyncGetResponseAsync(meta, store.getDocsToSend(db, ids))));
 */
export async function* encodeSyncGetResponseAsync(
  meta: SyncGetMeta,
  entries: AsyncIterable<SyncGetEntryOut> | Iterable<SyncGetEntryOut>,
  maxPieceChars = SYNC_GET_PIECE_CHARS,
): AsyncGenerator<string | Buffer> {
  let parts: string[] = [encodeSyncGetResponseStart(meta)];
  let size = parts[0]!.length;
  for await (const e of entries) {
    assertFramable(e.content);
    if (e.content !== null && typeof e.content !== 'string') {
      parts.push(`,${CRLF}${encodeEntryInfo(e)},${CRLF}`);
      yield parts.join('');
      yield Buffer.isBuffer(e.content) ? e.content : Buffer.from(e.content.buffer, e.content.byteOffset, e.content.byteLength);
      parts = [];
      size = 0;
      continue;
    }
    const entry = `,${CRLF}${encodeEntryInfo(e)},${CRLF}${e.content ?? ''}`;
    parts.push(entry);
    size += entry.length;
    if (size >= maxPieceChars) {
      yield parts.length === 1 ? entry : parts.join('');
      parts = [];
      size = 0;
    }
  }
  parts.push(SYNC_GET_RESPONSE_END);
  yield parts.join('');
}

type GetState = 'open' | 'meta' | 'info' | 'content' | 'done' | 'failed';

/**
 * Incremental parser of a download response (client side). Lines end at CRLF only, one trailing comma per line
 * is structure. Any framing error, an entry carrying an `"error"` key, a count different from
 * `number_of_changes` or a missing final `]` is a {@link BrokenSyncStreamError}.
 *
 * @example
 * const parser = new SyncGetResponseParser();
 * for await (const chunk of res.body) for (const item of parser.push(chunk)) await apply(item);
 * for (const item of parser.end()) await apply(item);
 */
export class SyncGetResponseParser<R = never> {
  private readonly lines: LineSplitter;
  private state: GetState = 'open';
  private comma = false;
  private expected = 0;
  private seen = 0;
  private pendingInfo: SyncGetEntryInfo | null = null;
  private readonly streamContent: SyncGetParserOptions<R>['streamContent'];
  /** The stream of the pending content line, if it has one. */
  private stream: ContentLineStream<R> | null = null;
  /** Pieces of the pending line handed to {@link stream}; -1: the line has none and will not get one. */
  private streamed = 0;

  constructor(options: SyncGetParserOptions<R> = {}) {
    this.lines = new LineSplitter({
      maxLineBytes: options.maxLineBytes ?? MAX_SYNC_LINE_BYTES,
      crlfOnly: true,
      tooLong: (max) => new BrokenSyncStreamError(`A line of the sync response is longer than ${max} bytes`),
    });
    this.streamContent = options.streamContent;
  }

  /** Feed a chunk of the response body; returns the items it completed. */
  push(chunk: Uint8Array | string): Array<SyncGetParsed<R>> {
    this.assertUsable();
    const out: Array<SyncGetItem | SyncGetStreamed<R>> = [];
    try {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      for (const line of this.lines.push(buf)) this.line(line, out);
      if (this.state === 'content' && this.streamContent !== undefined) this.feedStream(this.streamContent);
    } catch (err) {
      this.fail();
      throw err;
    }
    return out as Array<SyncGetParsed<R>>;
  }

  /** Signal the end of the body; returns the last items, or throws if the stream is incomplete. */
  end(): Array<SyncGetParsed<R>> {
    this.assertUsable();
    const out: Array<SyncGetItem | SyncGetStreamed<R>> = [];
    try {
      const last = this.lines.finish();
      if (last !== null) this.line(last, out);
      if (this.state !== 'done') throw new BrokenSyncStreamError('The sync response ended before its final "]"');
    } catch (err) {
      this.fail();
      throw err;
    }
    return out as Array<SyncGetParsed<R>>;
  }

  /** Stop before the end: a content stream lets go of what it holds (it zeroes the plaintext it has). */
  close(): void {
    this.stream?.discard();
    this.stream = null;
    this.streamed = -1;
  }

  private assertUsable(): void {
    if (this.state === 'failed') throw new BrokenSyncStreamError('The sync response was already rejected');
  }

  private fail(): void {
    this.state = 'failed';
    this.stream?.discard();
    this.stream = null;
  }

  /** Hand the pending content line's new pieces to its stream, opening one once the line is long enough. */
  private feedStream(options: NonNullable<SyncGetParserOptions<R>['streamContent']>): void {
    if (this.streamed < 0) return;
    if (this.stream === null) {
      if (this.lines.pendingBytes < options.minBytes) return;
      this.stream = options.open(this.pendingInfo!);
      if (this.stream === null) {
        this.streamed = -1;
        return;
      }
    }
    const pieces = this.lines.pendingPieces();
    for (; this.streamed < pieces.length; this.streamed++) {
      if (!this.stream.push(pieces[this.streamed]!)) {
        this.stream.discard();
        this.stream = null;
        this.streamed = -1;
        return;
      }
    }
  }

  /** The pending content line is complete: the document as its stream decoded it, or `false` to parse it whole. */
  private finishStream(raw: Buffer, out: Array<SyncGetItem | SyncGetStreamed<R>>): boolean {
    const stream = this.stream;
    this.stream = null;
    this.streamed = 0;
    if (stream === null) return false;
    if (this.seen >= this.expected) {
      stream.discard();
      return false;
    }
    // Content is data: only the one structural trailing comma is removed (as stripComma does).
    const comma = raw.length > 0 && raw[raw.length - 1] === 0x2c;
    const content = comma ? raw.subarray(0, raw.length - 1) : raw;
    const result = stream.finish(content);
    if (result === null) return false;
    this.seen += 1;
    this.comma = comma;
    this.state = 'info';
    out.push({ type: 'streamed', info: this.pendingInfo!, contentBytes: content.length, result });
    this.pendingInfo = null;
    return true;
  }

  private line(raw: Buffer, out: Array<SyncGetItem | SyncGetStreamed<R>>): void {
    if (this.state === 'content' && this.finishStream(raw, out)) return;
    const line = decodeUtf8(raw);
    if (line === null) throw new BrokenSyncStreamError('The sync response is not valid UTF-8');
    switch (this.state) {
      case 'open':
        if (stripAsciiWhitespace(line) !== '[') throw new BrokenSyncStreamError('The sync response must start with "["');
        this.state = 'meta';
        return;
      case 'meta': {
        const [text, comma] = stripComma(stripAsciiWhitespace(line));
        const obj = parseJsonObjectOr(text, broken, 'sync response metadata');
        rejectErrorEntry(obj);
        const meta: SyncGetMeta = {
          new_generation: reqGeneration(obj, 'new_generation', broken),
          new_transaction_id: reqString(obj, 'new_transaction_id', broken),
          number_of_changes: reqGeneration(obj, 'number_of_changes', broken),
        };
        const replica = optString(obj, 'replica_uid', broken);
        if (replica !== undefined) meta.replica_uid = replica;
        this.expected = meta.number_of_changes;
        this.comma = comma;
        this.state = 'info';
        out.push({ type: 'meta', meta });
        return;
      }
      case 'info': {
        const trimmed = stripAsciiWhitespace(line);
        if (trimmed === ']') {
          if (this.comma) throw new BrokenSyncStreamError('Extra comma before the final "]"');
          if (this.seen !== this.expected) {
            throw new BrokenSyncStreamError(`Expected ${this.expected} documents, got ${this.seen}`);
          }
          this.state = 'done';
          return;
        }
        if (!this.comma) throw new BrokenSyncStreamError('Missing comma between sync response entries');
        const [text, comma] = stripComma(trimmed);
        if (!comma) throw new BrokenSyncStreamError('Missing comma after a document entry');
        const obj = parseJsonObjectOr(text, broken, 'document entry');
        rejectErrorEntry(obj);
        this.pendingInfo = {
          id: reqString(obj, 'id', broken),
          rev: reqString(obj, 'rev', broken),
          gen: reqGeneration(obj, 'gen', broken),
          trans_id: reqString(obj, 'trans_id', broken),
        };
        this.state = 'content';
        return;
      }
      case 'content': {
        if (this.seen >= this.expected) {
          throw new BrokenSyncStreamError(`More documents than the announced ${this.expected}`);
        }
        // Content is data: only the one structural trailing comma is removed, nothing is trimmed.
        const [text, comma] = stripComma(line);
        this.seen += 1;
        this.comma = comma;
        this.state = 'info';
        out.push({ type: 'doc', entry: { ...this.pendingInfo!, content: text === '' ? null : text } });
        this.pendingInfo = null;
        return;
      }
      case 'done':
        if (stripAsciiWhitespace(line) !== '') throw new BrokenSyncStreamError('Data after the final "]"');
        return;
      case 'failed':
        throw new BrokenSyncStreamError('The sync response was already rejected');
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------------

type MakeError = (message: string, cause?: unknown) => SoledadError;

const badRequest: MakeError = (message, cause) => new BadRequestError(message, { cause });
const broken: MakeError = (message, cause) => new BrokenSyncStreamError(message, { cause });

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  return typeof v === 'string' ? v.slice(0, 100) : 'unknown';
}

function parseJsonObjectOr(text: string, fail: MakeError, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw fail(`Malformed ${what}: not JSON`, cause);
  }
  if (!isObject(value)) throw fail(`Malformed ${what}: not a JSON object`);
  return value;
}

function onlyKeys(obj: Record<string, unknown>, allowed: readonly string[], fail: MakeError): void {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) throw fail(`Unexpected key "${k.slice(0, 50)}"`);
}

function reqString(obj: Record<string, unknown>, key: string, fail: MakeError): string {
  const v = obj[key];
  if (typeof v !== 'string') throw fail(`"${key}" must be a string`);
  return v;
}

function optString(obj: Record<string, unknown>, key: string, fail: MakeError): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw fail(`"${key}" must be a string`);
  return v;
}

function reqGeneration(obj: Record<string, unknown>, key: string, fail: MakeError): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw fail(`"${key}" must be a non-negative integer`);
  return v;
}

function rejectErrorEntry(obj: Record<string, unknown>): void {
  if ('error' in obj) throw new BrokenSyncStreamError(`The server reported an error: ${describe(obj['error'])}`);
}

/** Whether `s` holds a CR or LF (two `indexOf` scans: several times faster than a regex over long content). */
function hasLineBreak(s: string): boolean {
  return s.indexOf('\n') !== -1 || s.indexOf('\r') !== -1;
}

function stripComma(line: string): [string, boolean] {
  return line.endsWith(',') ? [line.slice(0, -1), true] : [line, false];
}

function encodeHeader(h: SyncHeader): string {
  return JSON.stringify({
    last_known_generation: h.last_known_generation,
    last_known_trans_id: h.last_known_trans_id,
    sync_id: h.sync_id,
    ensure: h.ensure,
  });
}

function assertFramable(content: string | Uint8Array | null): void {
  if (content === null) return;
  const broken = typeof content === 'string' ? hasLineBreak(content) : content.includes(0x0a) || content.includes(0x0d);
  if (broken) {
    throw new InvalidContentError('Document content with a line break cannot be sent in a sync stream');
  }
}

function parseHeaderObject(text: string): SyncHeader {
  const obj = parseJsonObjectOr(text, badRequest, 'sync header');
  onlyKeys(obj, HEADER_KEYS, badRequest);
  const transId = obj['last_known_trans_id'];
  if (transId !== undefined && transId !== null && typeof transId !== 'string') {
    throw new BadRequestError('"last_known_trans_id" must be a string or null');
  }
  const ensure = obj['ensure'];
  if (ensure !== undefined && typeof ensure !== 'boolean') throw new BadRequestError('"ensure" must be a boolean');
  return {
    last_known_generation: reqGeneration(obj, 'last_known_generation', badRequest),
    last_known_trans_id: typeof transId === 'string' ? transId : '',
    // The original concatenates sync_id into a cache key: a missing one cannot work.
    sync_id: reqString(obj, 'sync_id', badRequest),
    ensure: ensure === true,
  };
}

function parsePutMeta(text: string): { meta: Omit<SyncPutEntry, 'content'>; content?: string | null } {
  const obj = parseJsonObjectOr(text, badRequest, 'document entry');
  onlyKeys(obj, PUT_META_KEYS, badRequest);
  const meta = {
    id: reqString(obj, 'id', badRequest),
    rev: reqString(obj, 'rev', badRequest),
    gen: reqGeneration(obj, 'gen', badRequest),
    trans_id: reqString(obj, 'trans_id', badRequest),
    number_of_docs: reqGeneration(obj, 'number_of_docs', badRequest),
    doc_idx: reqGeneration(obj, 'doc_idx', badRequest),
  };
  if (!('content' in obj)) return { meta };
  const content = obj['content'];
  if (content !== null && typeof content !== 'string') throw new BadRequestError('"content" must be a string or null');
  return { meta, content };
}
