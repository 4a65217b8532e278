/**
 * Body of the download-decoding worker thread (see {@link DecodeWorker} in `decode-worker.ts`): it receives a
 * download response's bytes, splits and parses the sync stream, and verifies and decrypts each document with the
 * same code the main thread would run. It answers with the documents' JSON texts as UTF-8 in one transferred
 * buffer per answer (outside both threads' JavaScript heaps), or with the error each document raised. Nothing here
 * touches the local database: that, and every decision about what to apply, stays on the main thread.
 */
import { parentPort } from 'node:worker_threads';
import { DocContentStream, DocKeys } from '../../common/crypto/doc-crypto.js';
import { SyncGetResponseParser, type SyncGetParsed } from '../../common/protocol/sync-stream.js';
import { acceptDecrypted, decodeIncomingBytes, type ExternalDocPolicy } from './incoming.js';
import { toThreadError, type FromWorker, type ToWorker, type WorkerItem } from './decode-protocol.js';

/**
 * A content line that reaches this many bytes before it ends is decrypted while the rest of it arrives
 * (`DocContentStream`): when its last byte comes, only the tag check and the JSON check are left, instead of the
 * whole decoding of a large document holding up the end of the download.
 */
const STREAM_CONTENT_FROM = 256 * 1024;

type Item = SyncGetParsed<Buffer>;

interface Session {
  readonly parser: SyncGetResponseParser<Buffer>;
  readonly secret: Buffer;
  readonly keys: DocKeys;
  readonly allowExternal: ExternalDocPolicy;
  failed: boolean;
}

const port = parentPort!;
const sessions = new Map<number, Session>();

/** Verify and decrypt the documents among `items` (`decodeIncomingBytes`); their texts go into one buffer, in order. */
function decode(s: Session, items: readonly Item[]): { out: WorkerItem[]; texts: ArrayBuffer | null } {
  const out: WorkerItem[] = [];
  const plains: Buffer[] = [];
  let total = 0;
  for (const item of items) {
    if (item.type === 'meta') {
      out.push({ meta: item.meta });
      continue;
    }
    const { id, rev, gen, trans_id } = item.type === 'doc' ? item.entry : item.info;
    const bytes = item.type === 'doc' ? (item.entry.content === null ? 0 : item.entry.content.length) : item.contentBytes;
    try {
      const plain = item.type === 'streamed' ? acceptDecrypted(item.result)
        : decodeIncomingBytes(s.secret, item.entry, { allowExternal: s.allowExternal, docKeys: s.keys });
      if (plain === null) {
        out.push({ id, rev, gen, trans_id, bytes, start: -1, end: -1 });
      } else {
        out.push({
          id, rev, gen, trans_id, bytes, start: total, end: total + plain.length,
          ...(item.type === 'streamed' ? { whileArriving: true } : {}),
        });
        plains.push(plain);
        total += plain.length;
      }
    } catch (err) {
      out.push({ id, rev, gen, trans_id, bytes, start: -1, end: -1, error: toThreadError(err) });
    }
  }
  if (plains.length === 0) return { out, texts: null };
  // One text in a memory block of its own (a large document's, as a stream decrypted it) goes over as it is.
  const only = plains.length === 1 ? plains[0]! : null;
  if (only !== null && only.byteOffset === 0 && only.byteLength === only.buffer.byteLength && only.buffer instanceof ArrayBuffer) {
    return { out, texts: only.buffer };
  }
  const texts = Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (const plain of plains) {
    texts.set(plain, at);
    at += plain.length;
    plain.fill(0);
  }
  return { out, texts: texts.buffer as ArrayBuffer };
}

function reply(message: FromWorker): void {
  port.postMessage(message, message.texts === null ? [] : [message.texts]);
}

function close(id: number): void {
  const s = sessions.get(id);
  if (s === undefined) return;
  sessions.delete(id);
  s.parser.close();
  s.keys.close();
  s.secret.fill(0);
}

/** Parse one piece of the stream (or its end) and answer; a broken stream ends the session with its error. */
function step(id: number, s: Session, consumed: number, parse: () => Item[], last: boolean): void {
  if (s.failed) {
    reply({ id, items: [], texts: null, consumed, done: false });
    return;
  }
  let items: Item[];
  try {
    items = parse();
  } catch (err) {
    s.failed = true;
    reply({ id, items: [], texts: null, consumed, done: true, error: toThreadError(err) });
    return;
  }
  const { out, texts } = decode(s, items);
  reply({ id, items: out, texts, consumed, done: last });
}

port.on('message', (m: ToWorker) => {
  if (m.t === 'open') {
    const secret = Buffer.from(m.secret);
    m.secret.fill(0);
    const keys = new DocKeys(secret);
    const parser = new SyncGetResponseParser<Buffer>({
      streamContent: { minBytes: STREAM_CONTENT_FROM, open: (info) => new DocContentStream(keys, info.id, info.rev) },
    });
    sessions.set(m.id, { parser, secret, keys, allowExternal: m.allowExternal, failed: false });
    return;
  }
  if (m.t === 'close') {
    close(m.id);
    return;
  }
  const s = sessions.get(m.id);
  // A closed session: its remaining input is dropped (the main thread no longer listens).
  if (s === undefined) return;
  if (m.t === 'data') step(m.id, s, m.buf.byteLength, () => s.parser.push(new Uint8Array(m.buf)), false);
  else step(m.id, s, 0, () => s.parser.end(), true);
});

port.postMessage({ id: 0, items: [], texts: null, consumed: 0, done: false, ready: true } satisfies FromWorker);
