/**
 * A worker thread that parses and decrypts download responses while the main thread writes the documents before
 * them to the local database.
 *
 * A large download is bound by the client's one busy thread: for 10,000 documents of 5 KB it spends about as long
 * parsing the stream and verifying and decrypting documents as it does writing them to SQLCipher. Here the main
 * thread only hands the response's bytes over (copied once, then transferred) and receives each answer's JSON texts
 * as UTF-8 in one transferred buffer, which it stores without decoding, so the two halves of the work run side by
 * side on a machine's two cores. It pays from a few dozen documents on: see `DEFAULT_DECODE_IN_WORKER_FROM`.
 *
 * One worker serves the whole process, started by its first sync so that it loads while the sync's first steps
 * run. If it cannot start, downloads are decoded on the main thread by the same code. The
 * worker holds the remote secret of a download only while that download runs, and zeroes it.
 */
import { Worker } from 'node:worker_threads';
import type { SyncGetMeta } from '../../common/protocol/sync-stream.js';
import { RetriableTransferError } from '../../common/errors.js';
import { fromThreadError, type FromWorker, type ThreadError, type ToWorker, type WorkerDoc } from './decode-protocol.js';
import type { ExternalDocPolicy } from './incoming.js';

/** Response bytes handed to the worker and not yet answered, past which the reader waits for the worker. */
const MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024;

/** A document the worker answered: its JSON text is in `texts` (see {@link decodedJson}). */
export interface DecodedDoc extends WorkerDoc {
  /** The answer's buffer of JSON texts (shared by the documents of one answer). */
  readonly texts: Buffer | null;
}

/** One item of a decoded download, in stream order. */
export type DecodedItem =
  | { readonly type: 'meta'; readonly meta: SyncGetMeta }
  | { readonly type: 'doc'; readonly doc: DecodedDoc };

function workerSource(): string {
  const here = import.meta.url;
  // Run from the TypeScript sources (a checkout), the worker needs tsx's loader, which Node 20 does not pass on
  // to workers; the built package runs the compiled file directly.
  if (here.endsWith('.ts')) {
    const tsx = import.meta.resolve('tsx/esm/api');
    const entry = new URL('./decode-worker-main.ts', here).href;
    return `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`;
  }
  return `import(${JSON.stringify(new URL('./decode-worker-main.js', here).href)})`;
}

/** The download failed because the worker thread exited: the next sync decodes on the main thread. */
function workerStoppedError(): Error {
  return new RetriableTransferError('The download\'s decoding thread stopped; the next sync decodes on the main thread');
}

/** The process's decoding worker. */
export class DecodeWorker {
  private static instance: DecodeWorker | undefined;
  private worker: Worker | null;
  private loaded = false;
  private nextId = 1;
  private readonly sessions = new Map<number, DecodeSession>();
  private readonly readyWaiters: Array<(ok: boolean) => void> = [];
  /** Sessions and waiters that need the worker's answers: while there are any, it keeps the process alive. */
  private holds = 0;

  /** The shared worker, started on first use. */
  static shared(): DecodeWorker {
    DecodeWorker.instance ??= new DecodeWorker();
    return DecodeWorker.instance;
  }

  private constructor() {
    let worker: Worker | null = null;
    try {
      worker = new Worker(workerSource(), { eval: true });
      worker.on('message', (m: FromWorker) => this.receive(m));
      worker.on('error', () => this.fail());
      worker.on('exit', () => this.fail());
      // Keeps the process alive only while a session or a waiter needs it (see `hold`). After the listeners:
      // adding a 'message' listener refs the worker's port again.
      worker.unref();
    } catch {
      worker = null;
    }
    this.worker = worker;
  }

  /** Resolves once the worker has loaded (true), or has failed to (false). */
  whenReady(): Promise<boolean> {
    if (this.ready) return Promise.resolve(true);
    if (this.worker === null) return Promise.resolve(false);
    // Someone waits for it: keep the process alive until it has loaded.
    this.hold();
    return new Promise((resolve) => this.readyWaiters.push((ok) => {
      this.release();
      resolve(ok);
    }));
  }

  /** True once the worker has loaded and can take a download. */
  get ready(): boolean {
    return this.worker !== null && this.loaded;
  }

  /** Start decoding a download, or `null` when the worker is not (or no longer) available. */
  open(remoteSecret: Buffer, allowExternal: ExternalDocPolicy): DecodeSession | null {
    if (!this.ready) return null;
    const id = this.nextId++;
    // An open session waits for answers that nothing else may keep the process alive for (the connection can be
    // gone already): the worker holds it until the session closes.
    this.hold();
    const session = new DecodeSession(id, (msg, transfer) => this.post(msg, transfer), () => {
      if (this.sessions.delete(id)) this.release();
    });
    this.sessions.set(id, session);
    // A copy, transferred: the worker zeroes it when the session closes; the caller's secret stays untouched.
    const secret = new Uint8Array(remoteSecret);
    this.post({ t: 'open', id, secret, allowExternal }, [secret.buffer]);
    return session;
  }

  private hold(): void {
    if (this.holds++ === 0) this.worker?.ref();
  }

  private release(): void {
    if (--this.holds === 0) this.worker?.unref();
  }

  private post(msg: ToWorker, transfer: ArrayBuffer[] = []): void {
    if (this.worker === null) throw workerStoppedError();
    this.worker.postMessage(msg, transfer);
  }

  private receive(m: FromWorker): void {
    if (m.ready === true) {
      this.loaded = true;
      for (const resolve of this.readyWaiters.splice(0)) resolve(true);
      return;
    }
    this.sessions.get(m.id)?.receive(m);
  }

  private fail(): void {
    this.worker = null;
    this.loaded = false;
    for (const resolve of this.readyWaiters.splice(0)) resolve(false);
    for (const s of this.sessions.values()) s.workerStopped();
    this.sessions.clear();
    this.holds = 0;
  }
}

/**
 * One download's stream through the worker. The caller feeds it the response's bytes ({@link DecodeSession.push}),
 * takes the decoded items in order ({@link DecodeSession.take}), and always ends with {@link DecodeSession.close}.
 */
export class DecodeSession {
  private ready: DecodedItem[] = [];
  private inFlight = 0;
  private finished = false;
  private error: Error | undefined;
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly id: number,
    private readonly send: (msg: ToWorker, transfer?: ArrayBuffer[]) => void,
    private readonly forget: () => void,
  ) {}

  /** True when the worker has answered the whole stream (after {@link DecodeSession.end}) or it failed. */
  get done(): boolean {
    return this.finished;
  }

  /** Hand pieces of the response body to the worker (copied into one buffer of its own, which is transferred). */
  push(chunks: readonly Uint8Array[]): void {
    let total = 0;
    for (const c of chunks) total += c.byteLength;
    // Not from Node's pool (it is transferred), and not zero-filled (every byte is written next).
    const copy = Buffer.allocUnsafeSlow(total);
    let at = 0;
    for (const c of chunks) {
      copy.set(c, at);
      at += c.byteLength;
    }
    this.inFlight += total;
    this.send({ t: 'data', id: this.id, buf: copy.buffer as ArrayBuffer }, [copy.buffer as ArrayBuffer]);
  }

  /** The response has ended. */
  end(): void {
    this.send({ t: 'end', id: this.id });
  }

  /** True when the worker has answered every piece pushed so far. */
  get answered(): boolean {
    return this.inFlight === 0;
  }

  /** True while enough bytes wait in the worker that the reader should let it catch up. */
  get saturated(): boolean {
    return this.inFlight > MAX_IN_FLIGHT_BYTES;
  }

  /** True when decoded items wait to be taken (or an error to be thrown). */
  get hasNews(): boolean {
    return this.ready.length > 0 || (this.error !== undefined && this.finished);
  }

  /**
   * The items decoded so far, in order, removed from the session. Throws the stream's error (a broken stream, or
   * the worker stopping) once every item decoded before it has been taken.
   */
  take(): DecodedItem[] {
    const items = this.ready;
    if (items.length === 0 && this.error !== undefined) throw this.error;
    this.ready = [];
    return items;
  }

  /** Resolves when the worker has answered something more (or failed). */
  async progress(): Promise<void> {
    if (this.ready.length > 0 || this.finished) return;
    await new Promise<void>((resolve) => {
      this.wake = resolve;
    });
  }

  /** Wake a pending {@link DecodeSession.progress} for something else the caller waits on (its next chunk). */
  poke(): void {
    this.signal();
  }

  /** Stop: the worker forgets the stream and zeroes its copy of the secret. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.forget();
    try {
      this.send({ t: 'close', id: this.id });
    } catch {
      // The worker is gone, and the secret with it.
    }
  }

  /** @internal An answer of the worker. */
  receive(m: FromWorker): void {
    this.inFlight -= m.consumed;
    const texts = m.texts === null ? null : Buffer.from(m.texts);
    for (const item of m.items) {
      this.ready.push('meta' in item ? { type: 'meta', meta: item.meta } : { type: 'doc', doc: { ...item, texts } });
    }
    if (m.error !== undefined) this.fault(fromThreadError(m.error));
    if (m.done) this.finished = true;
    this.signal();
  }

  /** @internal The worker thread exited or crashed. */
  workerStopped(): void {
    this.fault(workerStoppedError());
    this.finished = true;
    this.signal();
  }

  private fault(err: Error): void {
    this.error ??= err;
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/**
 * The verified JSON text of a decoded document as UTF-8 bytes (a view of its answer's buffer; `null`: deleted), or
 * throws the error verifying it raised.
 */
export function decodedJson(doc: DecodedDoc): Buffer | null {
  if (doc.error !== undefined) throw fromThreadError(doc.error satisfies ThreadError);
  if (doc.start < 0) return null;
  return doc.texts!.subarray(doc.start, doc.end);
}
