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
export * from './common/errors.js';

export type { SoledadOptions, RecoverOptions, SoledadEvents } from './client/soledad.js';
export type { JsonObject, JsonValue } from './common/u1db/json.js';
export type { SyncProgress, SyncStats } from './client/sync/synchronizer.js';
