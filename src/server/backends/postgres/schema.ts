/**
 * Tables of the PostgreSQL engine and their version. The schema is created on first start (under an advisory
 * lock, so several processes starting together create it once) and checked on every later start: a version this
 * build does not know stops the server, as the original does with a CouchDB database of another schema version.
 */
import { BackendNotReadyError } from '../../../common/errors.js';
import type { PgDatabase, Queryable } from './connection.js';

/** The schema version this build reads and writes. */
export const PG_SCHEMA_VERSION = '2';

/**
 * Upgrades from an older version this build knows, applied in order at start-up under the schema lock. Each one
 * is additive, so a server of the previous version keeps working on the upgraded tables until it is replaced.
 */
const UPGRADES: ReadonlyArray<{ from: string; to: string; ddl: string }> = [
  // 2: the metadata record beside a blob's flags (the incoming box's reservations and failures).
  { from: '1', to: '2', ddl: 'ALTER TABLE blobs ADD COLUMN IF NOT EXISTS meta jsonb' },
];

/** Arbitrary constant naming the advisory lock taken while the schema is created. */
const SCHEMA_LOCK_KEY = 0x50_1e_da_d0;

const DDL = `
CREATE TABLE soledad_meta (key text PRIMARY KEY, value text NOT NULL);

-- One row per user database (U1DB replica). The row is also the writers' lock: a write transaction holds it
-- FOR UPDATE, so generations are allocated one writer at a time across every server process.
CREATE TABLE user_databases (
  db_name text PRIMARY KEY,
  replica_uid text NOT NULL,
  generation bigint NOT NULL DEFAULT 0,
  transaction_id text NOT NULL DEFAULT '',
  usage_bytes bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE documents (
  db_name text NOT NULL REFERENCES user_databases ON DELETE CASCADE,
  doc_id text NOT NULL,
  rev text NOT NULL,
  content text,
  generation bigint NOT NULL,
  size bigint NOT NULL,
  PRIMARY KEY (db_name, doc_id)
);
CREATE INDEX documents_by_generation ON documents (db_name, generation);
CREATE TABLE transaction_log (
  db_name text NOT NULL REFERENCES user_databases ON DELETE CASCADE,
  generation bigint NOT NULL,
  doc_id text NOT NULL,
  transaction_id text NOT NULL,
  PRIMARY KEY (db_name, generation)
);
CREATE TABLE sync_log (
  db_name text NOT NULL REFERENCES user_databases ON DELETE CASCADE,
  replica_uid text NOT NULL,
  known_generation bigint NOT NULL,
  known_transaction_id text NOT NULL,
  PRIMARY KEY (db_name, replica_uid)
);

CREATE TABLE shared_documents (doc_id text PRIMARY KEY, rev text NOT NULL, content text);

-- The LEAP platform's token documents: id = sha512(token) hex, type 'Token', user_id; plus an optional expiry.
CREATE TABLE tokens (
  id text PRIMARY KEY,
  type text NOT NULL,
  user_id text NOT NULL,
  created_at timestamptz,
  expires_at timestamptz
);

-- Blob content is written in fixed-size chunks before any name points at it, so a half-written blob is never
-- visible; content no name points at is swept after a grace period (crashed writes, deleted blobs whose
-- readers are done).
CREATE TABLE blob_contents (
  id bigserial PRIMARY KEY,
  chunk_size integer NOT NULL,
  touched_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE blob_chunks (
  content_id bigint NOT NULL REFERENCES blob_contents ON DELETE CASCADE,
  seq integer NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (content_id, seq)
);
-- A name: a live blob (content_id set) or a deletion marker (deleted, no content, no flags).
CREATE TABLE blobs (
  user_id text NOT NULL,
  namespace text NOT NULL,
  blob_id text NOT NULL,
  content_id bigint REFERENCES blob_contents ON DELETE SET NULL,
  size bigint NOT NULL,
  created_at timestamptz NOT NULL,
  flags text[] NOT NULL DEFAULT '{}',
  deleted boolean NOT NULL DEFAULT false,
  -- The incoming box's record (reservation, failures); NULL for ordinary blobs.
  meta jsonb,
  PRIMARY KEY (user_id, namespace, blob_id)
);
CREATE INDEX blobs_by_date ON blobs (user_id, namespace, created_at);
CREATE INDEX blobs_by_content ON blobs (content_id);
-- Bytes of live blobs per user, kept by the same transactions that add and delete blobs.
CREATE TABLE blob_usage (user_id text PRIMARY KEY, used bigint NOT NULL DEFAULT 0);
-- Quota held by writes in progress; a lease, so a crashed process's reservations lapse by themselves.
CREATE TABLE blob_reservations (
  id bigserial PRIMARY KEY,
  user_id text NOT NULL,
  bytes bigint NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX blob_reservations_by_user ON blob_reservations (user_id);
`;

/** What {@link ensurePgSchema} found. */
export interface PgSchemaState {
  /** Whether the tables were created by this call. */
  readonly created: boolean;
  /** The version in place. */
  readonly version: string;
}

async function readVersion(q: Queryable, schema: string): Promise<string | null> {
  const exists = await q.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${schema}.soledad_meta`]);
  if (exists.rows[0]?.t === null || exists.rows[0]?.t === undefined) return null;
  const row = await q.query<{ value: string }>("SELECT value FROM soledad_meta WHERE key = 'schema_version'");
  return row.rows[0]?.value ?? '';
}

function refuse(version: string, schema: string): never {
  throw new BackendNotReadyError(
    `postgres_url: schema "${schema}" has soledad schema version "${version}", this server knows only ${PG_SCHEMA_VERSION}; refusing to start`,
  );
}

/**
 * Create the tables if the schema has none, or check their version. Throws {@link BackendNotReadyError} on an
 * unknown version (nothing is changed then).
 *
 * @example
 * const { created } = await ensurePgSchema(db);
 */
export async function ensurePgSchema(db: PgDatabase): Promise<PgSchemaState> {
  const found = await readVersion(db, db.schema);
  if (found !== null) {
    if (found === PG_SCHEMA_VERSION) return { created: false, version: found };
    if (!UPGRADES.some((u) => u.from === found)) refuse(found, db.schema);
    return upgrade(db);
  }
  return db.transaction(async (c) => {
    await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${db.schema}`);
    await c.query(`SET LOCAL search_path TO ${db.schema}`);
    const again = await readVersion(c, db.schema);
    if (again !== null) {
      if (again !== PG_SCHEMA_VERSION) refuse(again, db.schema);
      return { created: false, version: again };
    }
    await c.query(DDL);
    await c.query("INSERT INTO soledad_meta (key, value) VALUES ('schema_version', $1)", [PG_SCHEMA_VERSION]);
    return { created: true, version: PG_SCHEMA_VERSION };
  });
}

/** Bring an older schema to {@link PG_SCHEMA_VERSION}, one step at a time, in one transaction. */
async function upgrade(db: PgDatabase): Promise<PgSchemaState> {
  return db.transaction(async (c) => {
    await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
    await c.query(`SET LOCAL search_path TO ${db.schema}`);
    let version = await readVersion(c, db.schema);
    for (const step of UPGRADES) {
      if (version !== step.from) continue;
      await c.query(step.ddl);
      await c.query("UPDATE soledad_meta SET value = $1 WHERE key = 'schema_version'", [step.to]);
      version = step.to;
    }
    if (version !== PG_SCHEMA_VERSION) refuse(version ?? '', db.schema);
    return { created: false, version };
  });
}

/**
 * The version in place without changing anything: `null` when the schema has no tables yet.
 *
 * @example
 * if ((await readPgSchemaVersion(db)) === null) console.log('run soledad-server migrate');
 */
export async function readPgSchemaVersion(db: PgDatabase): Promise<string | null> {
  return readVersion(db, db.schema);
}
