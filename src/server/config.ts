/**
 * Server configuration: the `[soledad-server]` section of the INI file of Soledad 0.10 (fact sheet §5a, seed
 * 001 "Configuring") plus its environment variables, and this port's additions (`backend`, `data_dir`,
 * `tls_cert`, `tls_key`, `quota_bytes`, the `incoming_*` options and the `[incoming-namespaces]` section).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseIni } from 'ini';
import { ConfigError } from '../common/errors.js';

/** Default location of the configuration file, as in the original. */
export const DEFAULT_CONFIG_FILE = '/etc/soledad/soledad-server.conf';
/** Section holding the options. */
export const CONFIG_SECTION = 'soledad-server';

/** Storage engines this port knows about; only {@link AVAILABLE_BACKENDS} are built in so far. */
export type BackendName = 'sqlite' | 'postgres' | 'couch';
/** Engines available in this build. */
export const AVAILABLE_BACKENDS: readonly BackendName[] = ['sqlite', 'postgres', 'couch'];

/**
 * The effective configuration. Paths are as written (relative ones resolve against the working directory).
 *
 * @example
 * const config = loadConfig(process.env, fileText);
 * console.log(config.httpsPort, config.dataDir);
 */
export interface ServerConfig {
  /** The file the options were read from (it may not exist). */
  readonly configFile: string;
  /** Whether that file existed. */
  readonly configFileFound: boolean;
  /** Storage engine, option `backend` (default `sqlite`). */
  readonly backend: BackendName;
  /** Where the embedded engine keeps its files: option `data_dir`, env `SOLEDAD_DATA_DIR` (default `./data`). */
  readonly dataDir: string;
  /** CouchDB URL: option `couch_url`, env `SOLEDAD_COUCH_URL` (used by the CouchDB engine). */
  readonly couchUrl: string;
  /** PostgreSQL URL: option `postgres_url`, env `SOLEDAD_POSTGRES_URL` (required with `backend = postgres`). */
  readonly postgresUrl: string | null;
  /** PostgreSQL schema holding the tables, option `postgres_schema` (default `soledad`). */
  readonly postgresSchema: string;
  /** Section `[database-security]`: the `_security` document of CouchDB databases the server creates. */
  readonly databaseSecurity: DatabaseSecurity;
  /** Command run with the database name to create a user database on `ensure`; `null` when unset. */
  readonly createCmd: string | null;
  /** netrc file with CouchDB admin credentials, option `admin_netrc`. */
  readonly adminNetrc: string;
  /** Option `batching`: write each sync batch in one backend call. */
  readonly batching: boolean;
  /** Option `blobs`: offer the blobs service (default true in this port). */
  readonly blobs: boolean;
  /** Option `blobs_path` (default `<data_dir>/blobs`). */
  readonly blobsPath: string;
  /** Option `concurrent_blob_writes`. */
  readonly concurrentBlobWrites: number;
  /** Option `services_tokens_file`: `service:token` lines for the Services API. */
  readonly servicesTokensFile: string;
  /** Per-user quota over documents and blobs in bytes, option `quota_bytes` (default 200 MiB). */
  readonly quotaBytes: number;
  /** Users API TLS port, env `HTTPS_PORT` (default 2323). */
  readonly httpsPort: number;
  /** Services API port on 127.0.0.1, env `LOCAL_SERVICES_PORT` (default 2525). */
  readonly localServicesPort: number;
  /** Env `SOLEDAD_LOG_TO_STDOUT`: log to standard output instead of standard error. */
  readonly logToStdout: boolean;
  /** TLS certificate (PEM): env `CERT_PATH` or option `tls_cert`; `null` → self-signed in `<data_dir>/tls/`. */
  readonly tlsCertPath: string | null;
  /** TLS private key (PEM): env `PRIVKEY_PATH` or option `tls_key`. */
  readonly tlsKeyPath: string | null;
  /**
   * Option `incoming_processing_threshold` (the seed's `PROCESSING_THRESHOLD`): how long a replica's reservation of
   * an incoming message holds without renewal before the message returns to `PENDING`. A duration: `600`, `600s`,
   * `10m`, `1500ms` (default 10 minutes).
   */
  readonly incomingProcessingThresholdMs: number;
  /**
   * Option `incoming_max_failures`: after this many failures reported by distinct client versions, an incoming
   * message is permanently failed and no client retries it (default 3).
   */
  readonly incomingMaxFailures: number;
  /** Option `incoming_quota_tolerance`: bytes a delivery may go over the user's quota (default 0). */
  readonly incomingQuotaToleranceBytes: number;
  /** Option `incoming_delete_permanently_failed`: delete a message once it is permanently failed (default false). */
  readonly incomingDeletePermanentlyFailed: boolean;
  /**
   * Section `[incoming-namespaces]`: `<service> = NS1, NS2` lists the namespaces a trusted app (a service of the
   * services tokens file) may deliver to. A service not listed may deliver only to `MX`.
   */
  readonly incomingNamespaces: ReadonlyMap<string, readonly string[]>;
  /**
   * Option `headers_timeout`: how long a client may take to send the request line and headers before the
   * connection is closed (slowloris). A duration (default 30 s).
   */
  readonly headersTimeoutMs: number;
  /**
   * Option `body_timeout`: how long a connection may stay silent in both directions (a request body that stops
   * arriving, an idle keep-alive) before it is closed. A duration (default 120 s).
   */
  readonly bodyTimeoutMs: number;
  /**
   * Option `max_syncs_per_user`: sync requests of one user served at once; more get 503 `unavailable`, which
   * clients retry (default 8; 0 = no limit).
   */
  readonly maxSyncsPerUser: number;
  /** Options present in the section that this server does not know (reported, not fatal, as the original). */
  readonly unknownOptions: readonly string[];
}

/** The `[database-security]` section (names and roles are comma-separated lists), as in the original. */
export interface DatabaseSecurity {
  /** Option `members` (default `soledad`). */
  readonly members: readonly string[];
  /** Option `members_roles`. */
  readonly membersRoles: readonly string[];
  /** Option `admins`. */
  readonly admins: readonly string[];
  /** Option `admins_roles`. */
  readonly adminsRoles: readonly string[];
}

const KNOWN_OPTIONS = [
  'postgres_url', 'postgres_schema',
  'couch_url', 'create_cmd', 'admin_netrc', 'batching', 'blobs', 'blobs_path', 'concurrent_blob_writes',
  'services_tokens_file', 'backend', 'data_dir', 'tls_cert', 'tls_key', 'quota_bytes',
  'incoming_processing_threshold', 'incoming_max_failures', 'incoming_quota_tolerance', 'incoming_delete_permanently_failed',
  'headers_timeout', 'body_timeout', 'max_syncs_per_user',
];

/** Section listing the namespaces each trusted app may deliver to. */
export const INCOMING_NAMESPACES_SECTION = 'incoming-namespaces';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Build the configuration from environment variables and the text of the INI file (`undefined` when the file
 * does not exist: defaults apply). Pure: no I/O. A bad value is a {@link ConfigError} whose one-line message
 * starts with the option or variable name.
 *
 * @example
 * loadConfig({ HTTPS_PORT: '8443' }, '[soledad-server]\nquota_bytes = 100MiB\n').quotaBytes; // 104857600
 */
export function loadConfig(env: Env, fileText?: string): ServerConfig {
  const configFile = nonEmpty(env['SOLEDAD_SERVER_CONFIG_FILE']) ?? DEFAULT_CONFIG_FILE;
  const section = fileText === undefined ? {} : readSection(fileText, configFile);
  const opt = (key: string): string | undefined => section[key];

  const backend = parseBackend(opt('backend'));
  const postgresUrl = nonEmpty(env['SOLEDAD_POSTGRES_URL']) ?? nonEmpty(opt('postgres_url')) ?? null;
  if (backend === 'postgres' && postgresUrl === null) {
    throw new ConfigError('postgres_url (or SOLEDAD_POSTGRES_URL): required with backend = postgres');
  }
  const postgresSchema = nonEmpty(opt('postgres_schema')) ?? 'soledad';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(postgresSchema)) {
    throw new ConfigError(`postgres_schema: expected a lowercase identifier, got "${postgresSchema}"`);
  }
  const dataDir = nonEmpty(env['SOLEDAD_DATA_DIR']) ?? nonEmpty(opt('data_dir')) ?? './data';
  const certEnv = nonEmpty(env['CERT_PATH']);
  const keyEnv = nonEmpty(env['PRIVKEY_PATH']);
  const tlsCertPath = certEnv ?? nonEmpty(opt('tls_cert')) ?? null;
  const tlsKeyPath = keyEnv ?? nonEmpty(opt('tls_key')) ?? null;
  if ((tlsCertPath === null) !== (tlsKeyPath === null)) {
    const missing = tlsCertPath === null ? 'tls_cert (or CERT_PATH)' : 'tls_key (or PRIVKEY_PATH)';
    throw new ConfigError(`${missing}: must be set together with the ${tlsCertPath === null ? 'key' : 'certificate'}`);
  }
  const httpsPort = parsePort('HTTPS_PORT', env['HTTPS_PORT'], 2323);
  const localServicesPort = parsePort('LOCAL_SERVICES_PORT', env['LOCAL_SERVICES_PORT'], 2525);

  return {
    configFile,
    configFileFound: fileText !== undefined,
    backend,
    dataDir,
    postgresUrl,
    postgresSchema,
    databaseSecurity: readSecurity(fileText),
    couchUrl: nonEmpty(env['SOLEDAD_COUCH_URL']) ?? nonEmpty(opt('couch_url')) ?? 'http://localhost:5984',
    createCmd: nonEmpty(opt('create_cmd')) ?? null,
    adminNetrc: nonEmpty(opt('admin_netrc')) ?? '/etc/couchdb/couchdb.netrc',
    batching: parseBool('batching', opt('batching'), true),
    blobs: parseBool('blobs', opt('blobs'), true),
    blobsPath: nonEmpty(opt('blobs_path')) ?? path.join(dataDir, 'blobs'),
    concurrentBlobWrites: parseInteger('concurrent_blob_writes', opt('concurrent_blob_writes'), 50, 1),
    servicesTokensFile: nonEmpty(opt('services_tokens_file')) ?? '/etc/soledad/services.tokens',
    quotaBytes: parseSize('quota_bytes', opt('quota_bytes'), 200 * 1024 * 1024),
    httpsPort,
    localServicesPort,
    logToStdout: nonEmpty(env['SOLEDAD_LOG_TO_STDOUT']) !== undefined,
    tlsCertPath,
    tlsKeyPath,
    incomingProcessingThresholdMs: parseDuration('incoming_processing_threshold', opt('incoming_processing_threshold'), 600_000),
    incomingMaxFailures: parseInteger('incoming_max_failures', opt('incoming_max_failures'), 3, 1),
    incomingQuotaToleranceBytes: parseSize('incoming_quota_tolerance', opt('incoming_quota_tolerance'), 0),
    incomingDeletePermanentlyFailed: parseBool('incoming_delete_permanently_failed', opt('incoming_delete_permanently_failed'), false),
    incomingNamespaces: readIncomingNamespaces(fileText),
    headersTimeoutMs: parseDuration('headers_timeout', opt('headers_timeout'), 30_000),
    bodyTimeoutMs: parseDuration('body_timeout', opt('body_timeout'), 120_000),
    maxSyncsPerUser: parseInteger('max_syncs_per_user', opt('max_syncs_per_user'), 8, 0),
    unknownOptions: Object.keys(section).filter((k) => !KNOWN_OPTIONS.includes(k)),
  };
}

/**
 * Read the configuration file named by the environment (a missing file means defaults) and build the
 * configuration with {@link loadConfig}. An unreadable file is a {@link ConfigError}.
 *
 * @example
 * const config = await readConfig(process.env);
 */
export async function readConfig(env: Env = process.env): Promise<ServerConfig> {
  const file = nonEmpty(env['SOLEDAD_SERVER_CONFIG_FILE']) ?? DEFAULT_CONFIG_FILE;
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new ConfigError(`SOLEDAD_SERVER_CONFIG_FILE: cannot read ${file} (${code ?? 'error'})`, { cause: err });
  }
  return loadConfig(env, text);
}

function readSection(text: string, file: string): Record<string, string> {
  let parsed: Record<string, unknown>;
  try {
    parsed = parseIni(text);
  } catch (cause) {
    throw new ConfigError(`${file}: not a valid INI file`, { cause });
  }
  const section = parsed[CONFIG_SECTION];
  const out: Record<string, string> = {};
  if (typeof section !== 'object' || section === null) return out;
  for (const [k, v] of Object.entries(section as Record<string, unknown>)) {
    // `ini` turns true/false into booleans and repeated keys into arrays; bring everything back to text.
    if (typeof v === 'string') out[k] = v.trim();
    else if (typeof v === 'boolean') out[k] = String(v);
    else throw new ConfigError(`${k}: expected a single value`);
  }
  return out;
}

function readSecurity(text: string | undefined): DatabaseSecurity {
  let section: unknown;
  try {
    section = text === undefined ? undefined : (parseIni(text) as Record<string, unknown>)['database-security'];
  } catch {
    section = undefined; // readSection already reported a malformed file
  }
  const get = (key: string): string | undefined => {
    const v = typeof section === 'object' && section !== null ? (section as Record<string, unknown>)[key] : undefined;
    return typeof v === 'string' ? v : undefined;
  };
  const list = (key: string, dflt: string[]): string[] => {
    const v = get(key);
    return v === undefined ? dflt : v.split(',').map((x) => x.trim()).filter((x) => x !== '');
  };
  return {
    members: list('members', ['soledad']),
    membersRoles: list('members_roles', []),
    admins: list('admins', []),
    adminsRoles: list('admins_roles', []),
  };
}

function readIncomingNamespaces(text: string | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section: unknown;
  try {
    section = text === undefined ? undefined : (parseIni(text) as Record<string, unknown>)[INCOMING_NAMESPACES_SECTION];
  } catch {
    return out; // readSection already reported a malformed file
  }
  if (typeof section !== 'object' || section === null) return out;
  for (const [service, value] of Object.entries(section as Record<string, unknown>)) {
    if (typeof value !== 'string') throw new ConfigError(`[${INCOMING_NAMESPACES_SECTION}] ${service}: expected a comma-separated list of namespaces`);
    const names = value.split(',').map((x) => x.trim()).filter((x) => x !== '');
    for (const ns of names) {
      // The blob name rule (VALID_BLOB_NAME): anything else could never be delivered to.
      if (!/^[a-zA-Z0-9_-]+$/.test(ns)) throw new ConfigError(`[${INCOMING_NAMESPACES_SECTION}] ${service}: invalid namespace "${ns}"`);
    }
    out.set(service, names);
  }
  return out;
}

const DURATION_UNITS: Record<string, number> = { '': 1000, ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 };

/** A duration in milliseconds: plain seconds (`600`) or digits with a unit (`1500ms`, `30s`, `10m`, `1h`). */
function parseDuration(key: string, v: string | undefined, dflt: number): number {
  const s = nonEmpty(v);
  if (s === undefined) return dflt;
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(s);
  const unit = m === null ? undefined : DURATION_UNITS[m[2]!.toLowerCase()];
  const n = m === null || unit === undefined ? NaN : Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n) || n <= 0) throw new ConfigError(`${key}: expected a duration like 600, 600s, 10m or 1500ms, got "${s}"`);
  return n;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function parseBackend(v: string | undefined): BackendName {
  const name = (nonEmpty(v) ?? 'sqlite').toLowerCase();
  const known: Record<string, BackendName> = { sqlite: 'sqlite', postgres: 'postgres', postgresql: 'postgres', couch: 'couch', couchdb: 'couch' };
  const backend = known[name];
  if (backend === undefined) throw new ConfigError(`backend: unknown engine "${name}" (expected sqlite, postgres or couch)`);
  if (!AVAILABLE_BACKENDS.includes(backend)) {
    throw new ConfigError(`backend: "${backend}" is not available in this build (available: ${AVAILABLE_BACKENDS.join(', ')})`);
  }
  return backend;
}

// ConfigParser.getboolean's vocabulary.
const TRUE_WORDS = ['1', 'yes', 'true', 'on'];
const FALSE_WORDS = ['0', 'no', 'false', 'off'];

function parseBool(key: string, v: string | undefined, dflt: boolean): boolean {
  const s = nonEmpty(v)?.toLowerCase();
  if (s === undefined) return dflt;
  if (TRUE_WORDS.includes(s)) return true;
  if (FALSE_WORDS.includes(s)) return false;
  throw new ConfigError(`${key}: expected true or false, got "${s}"`);
}

function parseInteger(key: string, v: string | undefined, dflt: number, min: number): number {
  const s = nonEmpty(v);
  if (s === undefined) return dflt;
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s)) || Number(s) < min) {
    throw new ConfigError(`${key}: expected an integer ≥ ${min}, got "${s}"`);
  }
  return Number(s);
}

function parsePort(key: string, v: string | undefined, dflt: number): number {
  const s = nonEmpty(v);
  if (s === undefined) return dflt;
  const n = Number(s);
  if (!/^\d+$/.test(s) || n > 65535) throw new ConfigError(`${key}: expected a port number 0–65535, got "${s}"`);
  return n;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4,
};

/** A byte count: plain digits or digits with a unit (`500MiB`, `2G`, `100MB`). */
function parseSize(key: string, v: string | undefined, dflt: number): number {
  const s = nonEmpty(v);
  if (s === undefined) return dflt;
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(s);
  const unit = m === null ? undefined : SIZE_UNITS[m[2]!.toLowerCase()];
  const n = m === null || unit === undefined ? NaN : Number(m[1]) * unit;
  if (!Number.isSafeInteger(n)) throw new ConfigError(`${key}: expected a size in bytes like 209715200 or 200MiB, got "${s}"`);
  return n;
}
