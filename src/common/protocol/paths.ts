/**
 * URL paths of the Users API (fact sheet §1, §4c, §5a), shared by the client that builds them and the server
 * that routes them.
 */

/** Name of a user's database on the server: `user-<uuid>`. */
export function userDbName(uuid: string): string {
  return `user-${uuid}`;
}

/**
 * Path of the sync resource of a user's database for one source replica.
 *
 * @example
 * syncFromPath('0123abcd', 'f00d'); // '/user-0123abcd/sync-from/f00d'
 */
export function syncFromPath(uuid: string, sourceReplicaUid: string): string {
  return `/user-${encodeURIComponent(uuid)}/sync-from/${encodeURIComponent(sourceReplicaUid)}`;
}

/** Name of the shared (recovery) database. */
export const SHARED_DB_NAME = 'shared';

/**
 * Path of a document of the shared database (recovery documents).
 *
 * @example
 * sharedDocPath('9f86d0…'); // '/shared/doc/9f86d0…'
 */
export function sharedDocPath(docId: string): string {
  return `/shared/doc/${encodeURIComponent(docId)}`;
}

/** Header carrying a document revision on `/shared/doc/<id>` responses. */
export const HEADER_U1DB_REV = 'x-u1db-rev';
/** Header telling whether a document has conflicts (`true` / `false`). */
export const HEADER_U1DB_HAS_CONFLICTS = 'x-u1db-has-conflicts';
