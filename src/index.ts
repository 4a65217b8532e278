/**
 * `soledad`: the client library.
 *
 * @example
 * import { Soledad } from 'soledad';
 * const sol = await Soledad.open({ uuid, passphrase, secretsPath, localDbPath });
 * await sol.createDoc({ hello: 'world' });
 * await sol.close();
 */
export { Soledad } from './client/soledad.js';
export { Document } from './common/u1db/document.js';
export { BlobManager } from './client/blobs/blob-manager.js';
export { AttachmentStates, ATTACHMENT_KEY } from './client/blobs/attachments.js';

export { IncomingBox } from './client/incoming/incoming-box.js';
export { INCOMING_ENCRYPTION_METHODS, INCOMING_DEFAULT_NAMESPACE } from './common/protocol/incoming.js';
export * from './common/errors.js';

export type { SoledadOptions, RecoverOptions, SoledadEvents, SoledadDocument } from './client/soledad.js';
export type { JsonObject, JsonValue } from './common/u1db/json.js';
export type { SyncProgress, SyncStats, SyncPhase } from './client/sync/synchronizer.js';
export type {
  BlobData, PutOptions, GetOptions, TransferOptions, RemoteListOptions, TransferProgress, TransferSummary,
  BlobSyncSummary, BlobManagerEvents, NamespaceOption, TransferFailure, BlobManagerOptions,
} from './client/blobs/blob-manager.js';
export type { AttachmentState, DocumentWithAttachments } from './client/blobs/attachments.js';
export type { BlobSyncStatus, LocalBlobEntry } from './client/blobs/local-store.js';
export type { RetrySchedule } from './client/blobs/transfer-queue.js';
export type { BlobOrder, QuotaReport } from './common/protocol/blobs.js';
export type {
  IncomingBoxConsumer, IncomingBoxOptions, IncomingBoxEvents, IncomingSummary, IncomingItemInfo, IncomingEvent,
  RegisterOptions,
} from './client/incoming/incoming-box.js';
export type { ReservationState, IncomingListQuery, IncomingFailure, IncomingEncryption } from './common/protocol/incoming.js';
