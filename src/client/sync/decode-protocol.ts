/**
 * Messages between the main thread and the download-decoding worker (`decode-worker.ts`,
 * `decode-worker-main.ts`), and how errors cross between them: by their stable code, revived as the same class.
 */
import { ERROR_CLASSES, SoledadError } from '../../common/errors.js';
import type { SyncGetMeta } from '../../common/protocol/sync-stream.js';
import type { ExternalDocPolicy } from './incoming.js';

/** An error as it crosses the thread boundary. */
export interface ThreadError {
  /** The {@link SoledadError} code, or `''` for any other error. */
  readonly code: string;
  readonly message: string;
}

/**
 * A downloaded document as the worker answers it: where its verified JSON text is in the answer's buffer (UTF-8),
 * or the error verifying it raised.
 */
export interface WorkerDoc {
  readonly id: string;
  readonly rev: string;
  readonly gen: number;
  readonly trans_id: string;
  /** Length of the content string as received (what the apply batches are sized by). */
  readonly bytes: number;
  /** Byte offsets of the content's JSON text in the answer's buffer; `start` is -1 for a deleted document. */
  readonly start: number;
  readonly end: number;
  /** Set when the document failed verification (then `start` and `end` mean nothing). */
  readonly error?: ThreadError;
  /** Set when it was decrypted while its bytes were still arriving (a large document). */
  readonly whileArriving?: true;
}

/** One item of a response, in stream order. */
export type WorkerItem = { readonly meta: SyncGetMeta } | WorkerDoc;

/** Main thread → worker. `secret` is a copy the worker zeroes; `buf` is transferred. */
export type ToWorker =
  | { readonly t: 'open'; readonly id: number; readonly secret: Uint8Array; readonly allowExternal: ExternalDocPolicy }
  | { readonly t: 'data'; readonly id: number; readonly buf: ArrayBuffer }
  | { readonly t: 'end'; readonly id: number }
  | { readonly t: 'close'; readonly id: number };

/** Worker → main thread: the items one message of a session produced. */
export interface FromWorker {
  readonly id: number;
  readonly items: WorkerItem[];
  /** The JSON texts of the answer's documents, one after the other (transferred); null when there are none. */
  readonly texts: ArrayBuffer | null;
  /** Bytes of the session's input this answer accounts for. */
  readonly consumed: number;
  /** The stream is over: ended cleanly, or failed with {@link FromWorker.error}. */
  readonly done: boolean;
  /** The stream itself is broken (not one document): nothing follows. */
  readonly error?: ThreadError;
  /** Sent once, when the worker has loaded. */
  readonly ready?: boolean;
}

/** Flatten an error for the other thread. */
export function toThreadError(err: unknown): ThreadError {
  if (err instanceof SoledadError) return { code: err.code, message: err.message };
  return { code: '', message: err instanceof Error ? err.message : String(err) };
}

let byCode: Map<string, (typeof ERROR_CLASSES)[number]> | undefined;

/** The error a {@link ThreadError} stands for: the catalogued class with its code, else a plain `Error`. */
export function fromThreadError(e: ThreadError): Error {
  if (byCode === undefined) byCode = new Map(ERROR_CLASSES.map((cls) => [new cls().code, cls]));
  const cls = e.code === '' ? undefined : byCode.get(e.code);
  return cls === undefined ? new Error(e.message) : new cls(e.message);
}
