/**
 * The one catalogue of named errors.
 *
 * Every error has a stable `code` (for programs), an HTTP `status` and a `wire` string: the
 * `{"error": "<wire>"}` body that Soledad 0.10 / U1DB servers send (fact sheet §1e). The server turns an
 * error into a response with {@link toWireBody}; the client turns a response back into the same class with
 * {@link errorFromWire}. Messages never carry secrets, keys, tokens or document content.
 */

export interface ErrorOptions {
  cause?: unknown;
}

/** Base class of every error this package throws on purpose. */
export class SoledadError extends Error {
  /** Stable machine-readable code, e.g. `REVISION_CONFLICT`. */
  readonly code: string = 'SOLEDAD_ERROR';
  /** HTTP status used when the error crosses the wire. */
  readonly status: number = 500;
  /** Wire string of the `{"error": …}` body (U1DB / Soledad vocabulary). */
  readonly wire: string = 'error';

  constructor(message?: string, options?: ErrorOptions) {
    super(message ?? 'Soledad error', options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }
}

type ErrorClass = new (message?: string, options?: ErrorOptions) => SoledadError;

function define(name: string, code: string, status: number, wire: string, defaultMessage: string): ErrorClass {
  // A named class per error keeps `instanceof`, stack names and `err.name` readable.
  const cls = {
    [name]: class extends SoledadError {
      override readonly code = code;
      override readonly status = status;
      override readonly wire = wire;
      constructor(message?: string, options?: ErrorOptions) {
        super(message ?? defaultMessage, options);
        this.name = name;
      }
    },
  }[name]!;
  return cls;
}

// ---- U1DB / sync errors with wire strings fixed by Soledad 0.10 (§1e) ----
export const InvalidDocIdError = define('InvalidDocIdError', 'INVALID_DOC_ID', 400, 'invalid document id', 'Invalid document id');
export type InvalidDocIdError = SoledadError;
export const MissingDocIdsError = define('MissingDocIdsError', 'MISSING_DOC_IDS', 400, 'missing document ids', 'Missing document ids');
export type MissingDocIdsError = SoledadError;
export const BadRequestError = define('BadRequestError', 'BAD_REQUEST', 400, 'bad request', 'Bad request');
export type BadRequestError = SoledadError;
export const UnauthorizedError = define('UnauthorizedError', 'UNAUTHORIZED', 401, 'unauthorized', 'Unauthorized');
export type UnauthorizedError = SoledadError;
/** Client-side name for a 401 during sync (the original maps InvalidAuthTokenError to `unauthorized`). */
export const InvalidAuthTokenError = define('InvalidAuthTokenError', 'INVALID_AUTH_TOKEN', 401, 'unauthorized', 'The server rejected the auth token');
export type InvalidAuthTokenError = SoledadError;
export const ForbiddenError = define('ForbiddenError', 'FORBIDDEN', 403, 'unauthorized', 'This credential may not access that resource');
export type ForbiddenError = SoledadError;
export const DocumentTooBigError = define('DocumentTooBigError', 'DOCUMENT_TOO_BIG', 403, 'document too big', 'Document too big');
export type DocumentTooBigError = SoledadError;
export const UserQuotaExceededError = define('UserQuotaExceededError', 'USER_QUOTA_EXCEEDED', 403, 'user quota exceeded', 'User quota exceeded');
export type UserQuotaExceededError = SoledadError;
export const SubscriptionNeededError = define('SubscriptionNeededError', 'SUBSCRIPTION_NEEDED', 403, 'user needs subscription', 'User needs subscription');
export type SubscriptionNeededError = SoledadError;
export const DatabaseDoesNotExistError = define('DatabaseDoesNotExistError', 'DATABASE_DOES_NOT_EXIST', 404, 'database does not exist', 'Database does not exist');
export type DatabaseDoesNotExistError = SoledadError;
export const DocumentDoesNotExistError = define('DocumentDoesNotExistError', 'DOCUMENT_DOES_NOT_EXIST', 404, 'document does not exist', 'Document does not exist');
export type DocumentDoesNotExistError = SoledadError;
export const DocumentAlreadyDeletedError = define('DocumentAlreadyDeletedError', 'DOCUMENT_ALREADY_DELETED', 404, 'document already deleted', 'Document already deleted');
export type DocumentAlreadyDeletedError = SoledadError;
export const DocumentDeletedError = define('DocumentDeletedError', 'DOCUMENT_DELETED', 404, 'document deleted', 'Document deleted');
export type DocumentDeletedError = SoledadError;
export const RevisionConflictError = define('RevisionConflictError', 'REVISION_CONFLICT', 409, 'revision conflict', 'Revision conflict');
export type RevisionConflictError = SoledadError;
export const InvalidGenerationError = define('InvalidGenerationError', 'INVALID_GENERATION', 409, 'invalid generation', 'Invalid generation');
export type InvalidGenerationError = SoledadError;
export const InvalidReplicaUidError = define('InvalidReplicaUidError', 'INVALID_REPLICA_UID', 409, 'invalid replica uid', 'Invalid replica uid');
export type InvalidReplicaUidError = SoledadError;
export const InvalidTransactionIdError = define('InvalidTransactionIdError', 'INVALID_TRANSACTION_ID', 409, 'invalid transaction id', 'Invalid transaction id');
export type InvalidTransactionIdError = SoledadError;
export const ConflictedDocError = define('ConflictedDocError', 'CONFLICTED_DOC', 409, 'conflicted document', 'Document has conflicts; resolve them first');
export type ConflictedDocError = SoledadError;
export const BackendNotReadyError = define('BackendNotReadyError', 'BACKEND_NOT_READY', 500, 'backend not ready', 'Backend not ready');
export type BackendNotReadyError = SoledadError;
export const UnavailableError = define('UnavailableError', 'UNAVAILABLE', 503, 'unavailable', 'Service unavailable');
export type UnavailableError = SoledadError;

// ---- U1DB local errors (document and index API) ----
export const InvalidJSONError = define('InvalidJSONError', 'INVALID_JSON', 400, 'invalid json', 'Content must be a JSON object');
export type InvalidJSONError = SoledadError;
export const InvalidContentError = define('InvalidContentError', 'INVALID_CONTENT', 400, 'invalid content', 'Invalid document content');
export type InvalidContentError = SoledadError;
export const InvalidGlobbingError = define('InvalidGlobbingError', 'INVALID_GLOBBING', 400, 'invalid globbing', 'After a wildcard every later value must be "*"');
export type InvalidGlobbingError = SoledadError;
export const InvalidValueForIndexError = define('InvalidValueForIndexError', 'INVALID_VALUE_FOR_INDEX', 400, 'invalid value for index', 'Wrong number or kind of values for this index');
export type InvalidValueForIndexError = SoledadError;
export const IndexNameTakenError = define('IndexNameTakenError', 'INDEX_NAME_TAKEN', 409, 'index name taken', 'An index with this name and another definition exists');
export type IndexNameTakenError = SoledadError;
export const IndexDefinitionParseError = define('IndexDefinitionParseError', 'INDEX_DEFINITION_PARSE', 400, 'index definition parse error', 'Could not parse the index expression');
export type IndexDefinitionParseError = SoledadError;
export const IndexDoesNotExistError = define('IndexDoesNotExistError', 'INDEX_DOES_NOT_EXIST', 404, 'index does not exist', 'No index with this name');
export type IndexDoesNotExistError = SoledadError;
export const BrokenSyncStreamError = define('BrokenSyncStreamError', 'BROKEN_SYNC_STREAM', 502, 'broken sync stream', 'The sync stream from the server is malformed or incomplete');
export type BrokenSyncStreamError = SoledadError;
export const DatabaseClosedError = define('DatabaseClosedError', 'DATABASE_CLOSED', 500, 'database closed', 'The database is closed');
export type DatabaseClosedError = SoledadError;

// ---- Secrets, keys and crypto (client side; never sent by a server) ----
export const WrongPassphraseError = define('WrongPassphraseError', 'WRONG_PASSPHRASE', 401, 'wrong passphrase', 'Wrong passphrase: the storage secrets could not be unlocked');
export type WrongPassphraseError = SoledadError;
export const SecretsFileCorruptedError = define('SecretsFileCorruptedError', 'SECRETS_FILE_CORRUPTED', 500, 'secrets corrupted', 'The storage secrets file is corrupted or truncated');
export type SecretsFileCorruptedError = SoledadError;
export const SecretsNotFoundError = define('SecretsNotFoundError', 'SECRETS_NOT_FOUND', 404, 'secrets not found', 'No storage secrets were found locally or on the server');
export type SecretsNotFoundError = SoledadError;
export const DatabaseKeyError = define('DatabaseKeyError', 'DATABASE_KEY', 500, 'database key', 'The local database could not be opened with this key (wrong key or not a Soledad database)');
export type DatabaseKeyError = SoledadError;
/** An authentication tag (GCM tag or HMAC) did not verify: the ciphertext was altered or the key is wrong. */
export const MacMismatchError = define('MacMismatchError', 'MAC_MISMATCH', 502, 'mac mismatch', 'Authentication tag mismatch: data was altered or the key is wrong');
export type MacMismatchError = SoledadError;
/** Ciphertext is authentic but bound to another document id or revision (swapped or forged). */
export const TamperedDocumentError = define('TamperedDocumentError', 'TAMPERED_DOCUMENT', 502, 'tampered document', 'Document ciphertext does not belong to this document id or revision');
export type TamperedDocumentError = SoledadError;
/** The server offered a revision that is not newer than the one already held (replay / rollback). */
export const RollbackError = define('RollbackError', 'ROLLBACK', 502, 'rollback', 'The server sent an older revision than the one held locally');
export type RollbackError = SoledadError;
export const InvalidPreambleError = define('InvalidPreambleError', 'INVALID_PREAMBLE', 502, 'invalid preamble', 'Invalid encryption preamble');
export type InvalidPreambleError = SoledadError;
export const EncryptionSchemeNotImplementedError = define('EncryptionSchemeNotImplementedError', 'ENCRYPTION_SCHEME_NOT_IMPLEMENTED', 502, 'encryption scheme not implemented', 'Unknown encryption scheme or method');
export type EncryptionSchemeNotImplementedError = SoledadError;

// ---- Blobs ----
export const BlobAlreadyExistsError = define('BlobAlreadyExistsError', 'BLOB_ALREADY_EXISTS', 409, 'blob already exists', 'Blob already exists');
export type BlobAlreadyExistsError = SoledadError;
export const BlobNotFoundError = define('BlobNotFoundError', 'BLOB_NOT_FOUND', 404, 'blob not found', "Blob doesn't exist");
export type BlobNotFoundError = SoledadError;
export const InvalidFlagsError = define('InvalidFlagsError', 'INVALID_FLAGS', 406, 'invalid flag', 'Invalid flag');
export type InvalidFlagsError = SoledadError;
export const QuotaExceededError = define('QuotaExceededError', 'QUOTA_EXCEEDED', 507, 'quota exceeded', 'Quota Exceeded!');
export type QuotaExceededError = SoledadError;
export const MaximumRetriesError = define('MaximumRetriesError', 'MAXIMUM_RETRIES', 503, 'maximum retries', 'Transfer failed after the maximum number of retries');
export type MaximumRetriesError = SoledadError;
export const RetriableTransferError = define('RetriableTransferError', 'RETRIABLE_TRANSFER', 503, 'retriable transfer', 'Transfer failed; it may succeed if retried');
export type RetriableTransferError = SoledadError;
export const RangeNotSatisfiableError = define('RangeNotSatisfiableError', 'RANGE_NOT_SATISFIABLE', 416, 'range not satisfiable', 'Requested range not satisfiable');
export type RangeNotSatisfiableError = SoledadError;

// ---- Incoming box ----
/**
 * An incoming message's reservation could not change hands: another replica holds it, it is no longer pending,
 * or this client's version already failed on it.
 */
export const ReservationConflictError = define('ReservationConflictError', 'RESERVATION_CONFLICT', 409, 'reservation conflict', 'The incoming message is reserved by another replica or not pending');
export type ReservationConflictError = SoledadError;
/** A delivery without `Content-Length`: the preamble the server adds records the payload size up front. */
export const LengthRequiredError = define('LengthRequiredError', 'LENGTH_REQUIRED', 411, 'length required', 'Content-Length is required');
export type LengthRequiredError = SoledadError;
/** A consumer's `process` or `save` did not settle in time (client side; the message is marked FAILED). */
export const ConsumerTimeoutError = define('ConsumerTimeoutError', 'CONSUMER_TIMEOUT', 504, 'consumer timeout', 'The incoming box consumer did not finish in time');
export type ConsumerTimeoutError = SoledadError;

// ---- Transport, configuration, generic ----
export const HttpError = define('HttpError', 'HTTP_ERROR', 500, 'error', 'Unexpected HTTP response');
export type HttpError = SoledadError;
export const ConnectionError = define('ConnectionError', 'CONNECTION', 503, 'connection', 'Could not reach the server');
export type ConnectionError = SoledadError;
export const PayloadTooLargeError = define('PayloadTooLargeError', 'PAYLOAD_TOO_LARGE', 413, 'request too large', 'Request body too large');
export type PayloadTooLargeError = SoledadError;
/** The server's storage is full (disk, file size limit or database space): nothing of the request was kept. */
export const InsufficientStorageError = define('InsufficientStorageError', 'INSUFFICIENT_STORAGE', 507, 'insufficient storage', 'The server is out of storage space; nothing was stored');
export type InsufficientStorageError = SoledadError;
export const NotFoundError = define('NotFoundError', 'NOT_FOUND', 404, 'not found', 'Not found');
export type NotFoundError = SoledadError;
export const ConfigError = define('ConfigError', 'CONFIG', 500, 'config', 'Invalid configuration');
export type ConfigError = SoledadError;
export const NotSupportedError = define('NotSupportedError', 'NOT_SUPPORTED', 501, 'not supported', 'Not supported');
export type NotSupportedError = SoledadError;

/**
 * Every catalogued class. Order matters for {@link errorFromWire}: where two classes share a wire string,
 * the first one listed is what a client revives.
 */
export const ERROR_CLASSES: readonly ErrorClass[] = [
  InvalidDocIdError, MissingDocIdsError, BadRequestError, InvalidAuthTokenError, UnauthorizedError, ForbiddenError,
  DocumentTooBigError, UserQuotaExceededError, SubscriptionNeededError, DatabaseDoesNotExistError,
  DocumentDoesNotExistError, DocumentAlreadyDeletedError, DocumentDeletedError, RevisionConflictError,
  InvalidGenerationError, InvalidReplicaUidError, InvalidTransactionIdError, ConflictedDocError,
  BackendNotReadyError, UnavailableError, InvalidJSONError, InvalidContentError, InvalidGlobbingError,
  InvalidValueForIndexError, IndexNameTakenError, IndexDefinitionParseError, IndexDoesNotExistError,
  BrokenSyncStreamError, DatabaseClosedError, WrongPassphraseError, SecretsFileCorruptedError, SecretsNotFoundError,
  DatabaseKeyError, MacMismatchError, TamperedDocumentError, RollbackError, InvalidPreambleError,
  EncryptionSchemeNotImplementedError, BlobAlreadyExistsError, BlobNotFoundError, InvalidFlagsError,
  QuotaExceededError, MaximumRetriesError, RetriableTransferError, RangeNotSatisfiableError, ReservationConflictError,
  LengthRequiredError, ConsumerTimeoutError, HttpError,
  ConnectionError, PayloadTooLargeError, InsufficientStorageError, NotFoundError, ConfigError, NotSupportedError,
];

/** The JSON body a server sends for an error: `{"error": wire, "message"?: text}`. */
export interface WireErrorBody {
  error: string;
  message?: string;
}

/** Serialize an error for the wire. Unknown errors become a generic 500 without internal details. */
export function toWireBody(err: unknown): { status: number; body: WireErrorBody } {
  if (err instanceof SoledadError) {
    return { status: err.status, body: { error: err.wire, message: err.message } };
  }
  return { status: 500, body: { error: 'error', message: 'Internal server error' } };
}

/**
 * Revive a server's error response as the matching class. A wire string shared by several classes revives as the
 * first one whose status also matches; an unknown one becomes {@link HttpError} carrying the status.
 */
export function errorFromWire(status: number, body: unknown): SoledadError {
  const wire = typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string'
    ? (body as { error: string }).error
    : undefined;
  const message = typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string'
    ? (body as { message: string }).message
    : undefined;
  if (wire !== undefined) {
    for (const cls of ERROR_CLASSES) {
      const probe = new cls();
      if (probe.wire === wire && probe.status === status) return new cls(message);
    }
    for (const cls of ERROR_CLASSES) {
      const probe = new cls();
      if (probe.wire === wire) return new cls(message);
    }
  }
  return new HttpStatusError(status, message ?? (wire !== undefined ? wire : `HTTP ${status}`));
}

/** An {@link HttpError} that remembers the status it came with. */
export class HttpStatusError extends HttpError {
  readonly httpStatus: number;
  constructor(status: number, message?: string, options?: ErrorOptions) {
    super(message, options);
    this.httpStatus = status;
    this.name = 'HttpError';
  }
}
