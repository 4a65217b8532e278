/**
 * The one catalogue of named errors.
 *
 * Every error has a stable `code` (for programs), an HTTP `status` and a `wire` string: the
 * `{"error": "<wire>"}` body that Soledad 0.10 / U1DB servers send (fact sheet §1e). The server turns an
 * error into a response with {@link toWireBody}; the client turns a response back into the same class with
 * {@link errorFromWire}. Messages never carry secrets, keys, tokens or document content.
 */

/** Options of every error constructor. */
export interface ErrorOptions {
  /** The underlying error, kept as `err.cause`. */
  cause?: unknown;
}

/**
 * Base class of every error this package throws on purpose. Each catalogued error is a subclass with its own
 * name, stable `code` and HTTP `status`; test for one with `instanceof`, or for any with `instanceof SoledadError`.
 *
 * @example
 * import { RevisionConflictError, SoledadError } from 'soledad';
 * try {
 *   await sol.putDoc(doc);
 * } catch (err) {
 *   if (err instanceof RevisionConflictError) doc = (await sol.getDoc(doc.docId))!; // someone else wrote first
 *   else if (err instanceof SoledadError) console.error(err.code, err.message);
 *   else throw err;
 * }
 */
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
/** Invalid document id. Code `INVALID_DOC_ID`, HTTP 400, wire `"invalid document id"`. */
export const InvalidDocIdError = define('InvalidDocIdError', 'INVALID_DOC_ID', 400, 'invalid document id', 'Invalid document id');
/** An instance of {@link InvalidDocIdError} (test it with `err instanceof InvalidDocIdError`). */
export type InvalidDocIdError = SoledadError;
/** Missing document ids. Code `MISSING_DOC_IDS`, HTTP 400, wire `"missing document ids"`. */
export const MissingDocIdsError = define('MissingDocIdsError', 'MISSING_DOC_IDS', 400, 'missing document ids', 'Missing document ids');
/** An instance of {@link MissingDocIdsError} (test it with `err instanceof MissingDocIdsError`). */
export type MissingDocIdsError = SoledadError;
/** Bad request. Code `BAD_REQUEST`, HTTP 400, wire `"bad request"`. */
export const BadRequestError = define('BadRequestError', 'BAD_REQUEST', 400, 'bad request', 'Bad request');
/** An instance of {@link BadRequestError} (test it with `err instanceof BadRequestError`). */
export type BadRequestError = SoledadError;
/** Unauthorized. Code `UNAUTHORIZED`, HTTP 401, wire `"unauthorized"`. */
export const UnauthorizedError = define('UnauthorizedError', 'UNAUTHORIZED', 401, 'unauthorized', 'Unauthorized');
/** An instance of {@link UnauthorizedError} (test it with `err instanceof UnauthorizedError`). */
export type UnauthorizedError = SoledadError;
/** Client-side name for a 401 during sync (the original maps InvalidAuthTokenError to `unauthorized`). */
export const InvalidAuthTokenError = define('InvalidAuthTokenError', 'INVALID_AUTH_TOKEN', 401, 'unauthorized', 'The server rejected the auth token');
/** An instance of {@link InvalidAuthTokenError} (test it with `err instanceof InvalidAuthTokenError`). */
export type InvalidAuthTokenError = SoledadError;
/** This credential may not access that resource. Code `FORBIDDEN`, HTTP 403, wire `"unauthorized"`. */
export const ForbiddenError = define('ForbiddenError', 'FORBIDDEN', 403, 'unauthorized', 'This credential may not access that resource');
/** An instance of {@link ForbiddenError} (test it with `err instanceof ForbiddenError`). */
export type ForbiddenError = SoledadError;
/** Document too big. Code `DOCUMENT_TOO_BIG`, HTTP 403, wire `"document too big"`. */
export const DocumentTooBigError = define('DocumentTooBigError', 'DOCUMENT_TOO_BIG', 403, 'document too big', 'Document too big');
/** An instance of {@link DocumentTooBigError} (test it with `err instanceof DocumentTooBigError`). */
export type DocumentTooBigError = SoledadError;
/** User quota exceeded. Code `USER_QUOTA_EXCEEDED`, HTTP 403, wire `"user quota exceeded"`. */
export const UserQuotaExceededError = define('UserQuotaExceededError', 'USER_QUOTA_EXCEEDED', 403, 'user quota exceeded', 'User quota exceeded');
/** An instance of {@link UserQuotaExceededError} (test it with `err instanceof UserQuotaExceededError`). */
export type UserQuotaExceededError = SoledadError;
/** User needs subscription. Code `SUBSCRIPTION_NEEDED`, HTTP 403, wire `"user needs subscription"`. */
export const SubscriptionNeededError = define('SubscriptionNeededError', 'SUBSCRIPTION_NEEDED', 403, 'user needs subscription', 'User needs subscription');
/** An instance of {@link SubscriptionNeededError} (test it with `err instanceof SubscriptionNeededError`). */
export type SubscriptionNeededError = SoledadError;
/** Database does not exist. Code `DATABASE_DOES_NOT_EXIST`, HTTP 404, wire `"database does not exist"`. */
export const DatabaseDoesNotExistError = define('DatabaseDoesNotExistError', 'DATABASE_DOES_NOT_EXIST', 404, 'database does not exist', 'Database does not exist');
/** An instance of {@link DatabaseDoesNotExistError} (test it with `err instanceof DatabaseDoesNotExistError`). */
export type DatabaseDoesNotExistError = SoledadError;
/** Document does not exist. Code `DOCUMENT_DOES_NOT_EXIST`, HTTP 404, wire `"document does not exist"`. */
export const DocumentDoesNotExistError = define('DocumentDoesNotExistError', 'DOCUMENT_DOES_NOT_EXIST', 404, 'document does not exist', 'Document does not exist');
/** An instance of {@link DocumentDoesNotExistError} (test it with `err instanceof DocumentDoesNotExistError`). */
export type DocumentDoesNotExistError = SoledadError;
/** Document already deleted. Code `DOCUMENT_ALREADY_DELETED`, HTTP 404, wire `"document already deleted"`. */
export const DocumentAlreadyDeletedError = define('DocumentAlreadyDeletedError', 'DOCUMENT_ALREADY_DELETED', 404, 'document already deleted', 'Document already deleted');
/** An instance of {@link DocumentAlreadyDeletedError} (test it with `err instanceof DocumentAlreadyDeletedError`). */
export type DocumentAlreadyDeletedError = SoledadError;
/** Document deleted. Code `DOCUMENT_DELETED`, HTTP 404, wire `"document deleted"`. */
export const DocumentDeletedError = define('DocumentDeletedError', 'DOCUMENT_DELETED', 404, 'document deleted', 'Document deleted');
/** An instance of {@link DocumentDeletedError} (test it with `err instanceof DocumentDeletedError`). */
export type DocumentDeletedError = SoledadError;
/** Revision conflict. Code `REVISION_CONFLICT`, HTTP 409, wire `"revision conflict"`. */
export const RevisionConflictError = define('RevisionConflictError', 'REVISION_CONFLICT', 409, 'revision conflict', 'Revision conflict');
/** An instance of {@link RevisionConflictError} (test it with `err instanceof RevisionConflictError`). */
export type RevisionConflictError = SoledadError;
/** Invalid generation. Code `INVALID_GENERATION`, HTTP 409, wire `"invalid generation"`. */
export const InvalidGenerationError = define('InvalidGenerationError', 'INVALID_GENERATION', 409, 'invalid generation', 'Invalid generation');
/** An instance of {@link InvalidGenerationError} (test it with `err instanceof InvalidGenerationError`). */
export type InvalidGenerationError = SoledadError;
/** Invalid replica uid. Code `INVALID_REPLICA_UID`, HTTP 409, wire `"invalid replica uid"`. */
export const InvalidReplicaUidError = define('InvalidReplicaUidError', 'INVALID_REPLICA_UID', 409, 'invalid replica uid', 'Invalid replica uid');
/** An instance of {@link InvalidReplicaUidError} (test it with `err instanceof InvalidReplicaUidError`). */
export type InvalidReplicaUidError = SoledadError;
/** Invalid transaction id. Code `INVALID_TRANSACTION_ID`, HTTP 409, wire `"invalid transaction id"`. */
export const InvalidTransactionIdError = define('InvalidTransactionIdError', 'INVALID_TRANSACTION_ID', 409, 'invalid transaction id', 'Invalid transaction id');
/** An instance of {@link InvalidTransactionIdError} (test it with `err instanceof InvalidTransactionIdError`). */
export type InvalidTransactionIdError = SoledadError;
/** Document has conflicts; resolve them first. Code `CONFLICTED_DOC`, HTTP 409, wire `"conflicted document"`. */
export const ConflictedDocError = define('ConflictedDocError', 'CONFLICTED_DOC', 409, 'conflicted document', 'Document has conflicts; resolve them first');
/** An instance of {@link ConflictedDocError} (test it with `err instanceof ConflictedDocError`). */
export type ConflictedDocError = SoledadError;
/** Backend not ready. Code `BACKEND_NOT_READY`, HTTP 500, wire `"backend not ready"`. */
export const BackendNotReadyError = define('BackendNotReadyError', 'BACKEND_NOT_READY', 500, 'backend not ready', 'Backend not ready');
/** An instance of {@link BackendNotReadyError} (test it with `err instanceof BackendNotReadyError`). */
export type BackendNotReadyError = SoledadError;
/** Service unavailable. Code `UNAVAILABLE`, HTTP 503, wire `"unavailable"`. */
export const UnavailableError = define('UnavailableError', 'UNAVAILABLE', 503, 'unavailable', 'Service unavailable');
/** An instance of {@link UnavailableError} (test it with `err instanceof UnavailableError`). */
export type UnavailableError = SoledadError;

// ---- U1DB local errors (document and index API) ----
/** Content must be a JSON object. Code `INVALID_JSON`, HTTP 400, wire `"invalid json"`. */
export const InvalidJSONError = define('InvalidJSONError', 'INVALID_JSON', 400, 'invalid json', 'Content must be a JSON object');
/** An instance of {@link InvalidJSONError} (test it with `err instanceof InvalidJSONError`). */
export type InvalidJSONError = SoledadError;
/** Invalid document content. Code `INVALID_CONTENT`, HTTP 400, wire `"invalid content"`. */
export const InvalidContentError = define('InvalidContentError', 'INVALID_CONTENT', 400, 'invalid content', 'Invalid document content');
/** An instance of {@link InvalidContentError} (test it with `err instanceof InvalidContentError`). */
export type InvalidContentError = SoledadError;
/** After a wildcard every later value must be "*". Code `INVALID_GLOBBING`, HTTP 400, wire `"invalid globbing"`. */
export const InvalidGlobbingError = define('InvalidGlobbingError', 'INVALID_GLOBBING', 400, 'invalid globbing', 'After a wildcard every later value must be "*"');
/** An instance of {@link InvalidGlobbingError} (test it with `err instanceof InvalidGlobbingError`). */
export type InvalidGlobbingError = SoledadError;
/** Wrong number or kind of values for this index. Code `INVALID_VALUE_FOR_INDEX`, HTTP 400, wire `"invalid value for index"`. */
export const InvalidValueForIndexError = define('InvalidValueForIndexError', 'INVALID_VALUE_FOR_INDEX', 400, 'invalid value for index', 'Wrong number or kind of values for this index');
/** An instance of {@link InvalidValueForIndexError} (test it with `err instanceof InvalidValueForIndexError`). */
export type InvalidValueForIndexError = SoledadError;
/** An index with this name and another definition exists. Code `INDEX_NAME_TAKEN`, HTTP 409, wire `"index name taken"`. */
export const IndexNameTakenError = define('IndexNameTakenError', 'INDEX_NAME_TAKEN', 409, 'index name taken', 'An index with this name and another definition exists');
/** An instance of {@link IndexNameTakenError} (test it with `err instanceof IndexNameTakenError`). */
export type IndexNameTakenError = SoledadError;
/** Could not parse the index expression. Code `INDEX_DEFINITION_PARSE`, HTTP 400, wire `"index definition parse error"`. */
export const IndexDefinitionParseError = define('IndexDefinitionParseError', 'INDEX_DEFINITION_PARSE', 400, 'index definition parse error', 'Could not parse the index expression');
/** An instance of {@link IndexDefinitionParseError} (test it with `err instanceof IndexDefinitionParseError`). */
export type IndexDefinitionParseError = SoledadError;
/** No index with this name. Code `INDEX_DOES_NOT_EXIST`, HTTP 404, wire `"index does not exist"`. */
export const IndexDoesNotExistError = define('IndexDoesNotExistError', 'INDEX_DOES_NOT_EXIST', 404, 'index does not exist', 'No index with this name');
/** An instance of {@link IndexDoesNotExistError} (test it with `err instanceof IndexDoesNotExistError`). */
export type IndexDoesNotExistError = SoledadError;
/** The sync stream from the server is malformed or incomplete. Code `BROKEN_SYNC_STREAM`, HTTP 502, wire `"broken sync stream"`. */
export const BrokenSyncStreamError = define('BrokenSyncStreamError', 'BROKEN_SYNC_STREAM', 502, 'broken sync stream', 'The sync stream from the server is malformed or incomplete');
/** An instance of {@link BrokenSyncStreamError} (test it with `err instanceof BrokenSyncStreamError`). */
export type BrokenSyncStreamError = SoledadError;
/** The database is closed. Code `DATABASE_CLOSED`, HTTP 500, wire `"database closed"`. */
export const DatabaseClosedError = define('DatabaseClosedError', 'DATABASE_CLOSED', 500, 'database closed', 'The database is closed');
/** An instance of {@link DatabaseClosedError} (test it with `err instanceof DatabaseClosedError`). */
export type DatabaseClosedError = SoledadError;

// ---- Secrets, keys and crypto (client side; never sent by a server) ----
/** Wrong passphrase: the storage secrets could not be unlocked. Code `WRONG_PASSPHRASE`, HTTP 401, wire `"wrong passphrase"`. */
export const WrongPassphraseError = define('WrongPassphraseError', 'WRONG_PASSPHRASE', 401, 'wrong passphrase', 'Wrong passphrase: the storage secrets could not be unlocked');
/** An instance of {@link WrongPassphraseError} (test it with `err instanceof WrongPassphraseError`). */
export type WrongPassphraseError = SoledadError;
/** The storage secrets file is corrupted or truncated. Code `SECRETS_FILE_CORRUPTED`, HTTP 500, wire `"secrets corrupted"`. */
export const SecretsFileCorruptedError = define('SecretsFileCorruptedError', 'SECRETS_FILE_CORRUPTED', 500, 'secrets corrupted', 'The storage secrets file is corrupted or truncated');
/** An instance of {@link SecretsFileCorruptedError} (test it with `err instanceof SecretsFileCorruptedError`). */
export type SecretsFileCorruptedError = SoledadError;
/** No storage secrets were found locally or on the server. Code `SECRETS_NOT_FOUND`, HTTP 404, wire `"secrets not found"`. */
export const SecretsNotFoundError = define('SecretsNotFoundError', 'SECRETS_NOT_FOUND', 404, 'secrets not found', 'No storage secrets were found locally or on the server');
/** An instance of {@link SecretsNotFoundError} (test it with `err instanceof SecretsNotFoundError`). */
export type SecretsNotFoundError = SoledadError;
/** The local database could not be opened with this key (wrong key or not a Soledad database). Code `DATABASE_KEY`, HTTP 500, wire `"database key"`. */
export const DatabaseKeyError = define('DatabaseKeyError', 'DATABASE_KEY', 500, 'database key', 'The local database could not be opened with this key (wrong key or not a Soledad database)');
/** An instance of {@link DatabaseKeyError} (test it with `err instanceof DatabaseKeyError`). */
export type DatabaseKeyError = SoledadError;
/** An authentication tag (GCM tag or HMAC) did not verify: the ciphertext was altered or the key is wrong. */
export const MacMismatchError = define('MacMismatchError', 'MAC_MISMATCH', 502, 'mac mismatch', 'Authentication tag mismatch: data was altered or the key is wrong');
/** An instance of {@link MacMismatchError} (test it with `err instanceof MacMismatchError`). */
export type MacMismatchError = SoledadError;
/** Ciphertext is authentic but bound to another document id or revision (swapped or forged). */
export const TamperedDocumentError = define('TamperedDocumentError', 'TAMPERED_DOCUMENT', 502, 'tampered document', 'Document ciphertext does not belong to this document id or revision');
/** An instance of {@link TamperedDocumentError} (test it with `err instanceof TamperedDocumentError`). */
export type TamperedDocumentError = SoledadError;
/** The server offered a revision that is not newer than the one already held (replay / rollback). */
export const RollbackError = define('RollbackError', 'ROLLBACK', 502, 'rollback', 'The server sent an older revision than the one held locally');
/** An instance of {@link RollbackError} (test it with `err instanceof RollbackError`). */
export type RollbackError = SoledadError;
/** Invalid encryption preamble. Code `INVALID_PREAMBLE`, HTTP 502, wire `"invalid preamble"`. */
export const InvalidPreambleError = define('InvalidPreambleError', 'INVALID_PREAMBLE', 502, 'invalid preamble', 'Invalid encryption preamble');
/** An instance of {@link InvalidPreambleError} (test it with `err instanceof InvalidPreambleError`). */
export type InvalidPreambleError = SoledadError;
/** Unknown encryption scheme or method. Code `ENCRYPTION_SCHEME_NOT_IMPLEMENTED`, HTTP 502, wire `"encryption scheme not implemented"`. */
export const EncryptionSchemeNotImplementedError = define('EncryptionSchemeNotImplementedError', 'ENCRYPTION_SCHEME_NOT_IMPLEMENTED', 502, 'encryption scheme not implemented', 'Unknown encryption scheme or method');
/** An instance of {@link EncryptionSchemeNotImplementedError} (test it with `err instanceof EncryptionSchemeNotImplementedError`). */
export type EncryptionSchemeNotImplementedError = SoledadError;

// ---- Blobs ----
/** Blob already exists. Code `BLOB_ALREADY_EXISTS`, HTTP 409, wire `"blob already exists"`. */
export const BlobAlreadyExistsError = define('BlobAlreadyExistsError', 'BLOB_ALREADY_EXISTS', 409, 'blob already exists', 'Blob already exists');
/** An instance of {@link BlobAlreadyExistsError} (test it with `err instanceof BlobAlreadyExistsError`). */
export type BlobAlreadyExistsError = SoledadError;
/** Blob doesn't exist. Code `BLOB_NOT_FOUND`, HTTP 404, wire `"blob not found"`. */
export const BlobNotFoundError = define('BlobNotFoundError', 'BLOB_NOT_FOUND', 404, 'blob not found', "Blob doesn't exist");
/** An instance of {@link BlobNotFoundError} (test it with `err instanceof BlobNotFoundError`). */
export type BlobNotFoundError = SoledadError;
/** Invalid flag. Code `INVALID_FLAGS`, HTTP 406, wire `"invalid flag"`. */
export const InvalidFlagsError = define('InvalidFlagsError', 'INVALID_FLAGS', 406, 'invalid flag', 'Invalid flag');
/** An instance of {@link InvalidFlagsError} (test it with `err instanceof InvalidFlagsError`). */
export type InvalidFlagsError = SoledadError;
/** Quota Exceeded. Code `QUOTA_EXCEEDED`, HTTP 507, wire `"quota exceeded"`. */
export const QuotaExceededError = define('QuotaExceededError', 'QUOTA_EXCEEDED', 507, 'quota exceeded', 'Quota Exceeded!');
/** An instance of {@link QuotaExceededError} (test it with `err instanceof QuotaExceededError`). */
export type QuotaExceededError = SoledadError;
/** Transfer failed after the maximum number of retries. Code `MAXIMUM_RETRIES`, HTTP 503, wire `"maximum retries"`. */
export const MaximumRetriesError = define('MaximumRetriesError', 'MAXIMUM_RETRIES', 503, 'maximum retries', 'Transfer failed after the maximum number of retries');
/** An instance of {@link MaximumRetriesError} (test it with `err instanceof MaximumRetriesError`). */
export type MaximumRetriesError = SoledadError;
/** Transfer failed; it may succeed if retried. Code `RETRIABLE_TRANSFER`, HTTP 503, wire `"retriable transfer"`. */
export const RetriableTransferError = define('RetriableTransferError', 'RETRIABLE_TRANSFER', 503, 'retriable transfer', 'Transfer failed; it may succeed if retried');
/** An instance of {@link RetriableTransferError} (test it with `err instanceof RetriableTransferError`). */
export type RetriableTransferError = SoledadError;
/** Requested range not satisfiable. Code `RANGE_NOT_SATISFIABLE`, HTTP 416, wire `"range not satisfiable"`. */
export const RangeNotSatisfiableError = define('RangeNotSatisfiableError', 'RANGE_NOT_SATISFIABLE', 416, 'range not satisfiable', 'Requested range not satisfiable');
/** An instance of {@link RangeNotSatisfiableError} (test it with `err instanceof RangeNotSatisfiableError`). */
export type RangeNotSatisfiableError = SoledadError;

// ---- Incoming box ----
/**
 * An incoming message's reservation could not change hands: another replica holds it, it is no longer pending,
 * or this client's version already failed on it.
 */
export const ReservationConflictError = define('ReservationConflictError', 'RESERVATION_CONFLICT', 409, 'reservation conflict', 'The incoming message is reserved by another replica or not pending');
/** An instance of {@link ReservationConflictError} (test it with `err instanceof ReservationConflictError`). */
export type ReservationConflictError = SoledadError;
/** A delivery without `Content-Length`: the preamble the server adds records the payload size up front. */
export const LengthRequiredError = define('LengthRequiredError', 'LENGTH_REQUIRED', 411, 'length required', 'Content-Length is required');
/** An instance of {@link LengthRequiredError} (test it with `err instanceof LengthRequiredError`). */
export type LengthRequiredError = SoledadError;
/** A consumer's `process` or `save` did not settle in time (client side; the message is marked FAILED). */
export const ConsumerTimeoutError = define('ConsumerTimeoutError', 'CONSUMER_TIMEOUT', 504, 'consumer timeout', 'The incoming box consumer did not finish in time');
/** An instance of {@link ConsumerTimeoutError} (test it with `err instanceof ConsumerTimeoutError`). */
export type ConsumerTimeoutError = SoledadError;

// ---- Transport, configuration, generic ----
/** Unexpected HTTP response. Code `HTTP_ERROR`, HTTP 500, wire `"error"`. */
export const HttpError = define('HttpError', 'HTTP_ERROR', 500, 'error', 'Unexpected HTTP response');
/** An instance of {@link HttpError} (test it with `err instanceof HttpError`). */
export type HttpError = SoledadError;
/** Could not reach the server. Code `CONNECTION`, HTTP 503, wire `"connection"`. */
export const ConnectionError = define('ConnectionError', 'CONNECTION', 503, 'connection', 'Could not reach the server');
/** An instance of {@link ConnectionError} (test it with `err instanceof ConnectionError`). */
export type ConnectionError = SoledadError;
/** Request body too large. Code `PAYLOAD_TOO_LARGE`, HTTP 413, wire `"request too large"`. */
export const PayloadTooLargeError = define('PayloadTooLargeError', 'PAYLOAD_TOO_LARGE', 413, 'request too large', 'Request body too large');
/** An instance of {@link PayloadTooLargeError} (test it with `err instanceof PayloadTooLargeError`). */
export type PayloadTooLargeError = SoledadError;
/** The server's storage is full (disk, file size limit or database space): nothing of the request was kept. */
export const InsufficientStorageError = define('InsufficientStorageError', 'INSUFFICIENT_STORAGE', 507, 'insufficient storage', 'The server is out of storage space; nothing was stored');
/** An instance of {@link InsufficientStorageError} (test it with `err instanceof InsufficientStorageError`). */
export type InsufficientStorageError = SoledadError;
/** Not found. Code `NOT_FOUND`, HTTP 404, wire `"not found"`. */
export const NotFoundError = define('NotFoundError', 'NOT_FOUND', 404, 'not found', 'Not found');
/** An instance of {@link NotFoundError} (test it with `err instanceof NotFoundError`). */
export type NotFoundError = SoledadError;
/** Invalid configuration. Code `CONFIG`, HTTP 500, wire `"config"`. */
export const ConfigError = define('ConfigError', 'CONFIG', 500, 'config', 'Invalid configuration');
/** An instance of {@link ConfigError} (test it with `err instanceof ConfigError`). */
export type ConfigError = SoledadError;
/** Not supported. Code `NOT_SUPPORTED`, HTTP 501, wire `"not supported"`. */
export const NotSupportedError = define('NotSupportedError', 'NOT_SUPPORTED', 501, 'not supported', 'Not supported');
/** An instance of {@link NotSupportedError} (test it with `err instanceof NotSupportedError`). */
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
  /** The wire string, e.g. `"revision conflict"`. */
  error: string;
  /** A human-readable message. */
  message?: string;
}

/**
 * Serialize an error for the wire. Unknown errors become a generic 500 without internal details.
 *
 * @example
 * toWireBody(new RevisionConflictError()); // { status: 409, body: { error: 'revision conflict', message: 'Revision conflict' } }
 */
export function toWireBody(err: unknown): {
  /** The HTTP status to answer with. */
  status: number;
  /** The JSON body. */
  body: WireErrorBody;
} {
  if (err instanceof SoledadError) {
    return { status: err.status, body: { error: err.wire, message: err.message } };
  }
  return { status: 500, body: { error: 'error', message: 'Internal server error' } };
}

/**
 * Revive a server's error response as the matching class. A wire string shared by several classes revives as the
 * first one whose status also matches; an unknown one becomes {@link HttpError} carrying the status.
 *
 * @example
 * errorFromWire(409, { error: 'revision conflict' }) instanceof RevisionConflictError; // true
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

/**
 * An {@link HttpError} that remembers the status it came with.
 *
 * @example
 * const err = errorFromWire(418, { error: 'teapot' });
 * if (err instanceof HttpStatusError) console.log(err.httpStatus); // 418
 */
export class HttpStatusError extends HttpError {
  /** The HTTP status of the unexpected response. */
  readonly httpStatus: number;
  constructor(status: number, message?: string, options?: ErrorOptions) {
    super(message, options);
    this.httpStatus = status;
    this.name = 'HttpError';
  }
}
