/**
 * A CLI profile: one user on one server, kept in its own private directory.
 *
 * ```
 * $SOLEDAD_CONFIG_DIR or $XDG_CONFIG_HOME/soledad or ~/.config/soledad     (mode 0700)
 *   <profile>/                                                             (mode 0700)
 *     profile.json     server, uuid, token, CA path, file names           (mode 0600; holds the token)
 *     soledad.json     storage secrets, encrypted under the passphrase    (mode 0600)
 *     soledad.u1db     documents, SQLCipher                               (mode 0600)
 *     state.json       the last sync's summary                            (mode 0600)
 * ```
 *
 * The passphrase is never stored. The token is: whoever can read `profile.json` can talk to the server as the
 * user (but cannot read any document without the passphrase).
 */
import { chmod, mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { CliError, UsageError } from './errors.js';

/** Mode of every directory the CLI creates. */
export const DIR_MODE = 0o700;
/** Mode of every file the CLI creates. */
export const FILE_MODE = 0o600;

/** The profile used when neither `--profile` nor `SOLEDAD_PROFILE` names one. */
export const DEFAULT_PROFILE = 'default';

/**
 * What `profile.json` holds.
 *
 * @example
 * const p: ProfileData = { version: 1, server: 'https://localhost:2323/', uuid, token, secrets: 'soledad.json',
 *   database: 'soledad.u1db', createdAt: new Date().toISOString() };
 */
export interface ProfileData {
  /** Format version of this file. */
  version: 1;
  /** Server base URL. */
  server: string;
  /** The user's uuid. */
  uuid: string;
  /** The user's auth token (this file is mode 0600 for that reason). */
  token: string;
  /** Absolute path of a PEM certificate to trust, for self-signed servers. */
  ca?: string;
  /** Secrets file name, relative to the profile directory. */
  secrets: string;
  /** Documents database file name, relative to the profile directory. */
  database: string;
  /** When the profile was written (ISO 8601). */
  createdAt: string;
}

/**
 * A profile found on disk, with absolute paths.
 *
 * @example
 * const profile = await loadProfile(locateProfile(io.env, 'default'));
 * console.log(profile.paths.database);
 */
export interface Profile {
  /** Profile name. */
  name: string;
  /** Its directory. */
  dir: string;
  /** The stored settings. */
  data: ProfileData;
  /** Absolute paths of its files. */
  paths: ProfilePaths;
}

/** Absolute paths of a profile's files. */
export interface ProfilePaths {
  /** `profile.json`. */
  profile: string;
  /** The storage secrets file. */
  secrets: string;
  /** The documents database. */
  database: string;
  /** `state.json`. */
  state: string;
}

/** Where a profile lives. */
export interface ProfileLocation {
  /** Profile name. */
  name: string;
  /** Directory that holds all profiles. */
  root: string;
  /** This profile's directory. */
  dir: string;
  /** Its `profile.json`. */
  file: string;
}

/**
 * The directory that holds every profile: `$SOLEDAD_CONFIG_DIR`, else `$XDG_CONFIG_HOME/soledad`, else
 * `~/.config/soledad`.
 *
 * @example
 * configRoot({ XDG_CONFIG_HOME: '/home/me/.config' }); // '/home/me/.config/soledad'
 */
export function configRoot(env: NodeJS.ProcessEnv): string {
  const explicit = env['SOLEDAD_CONFIG_DIR'];
  if (explicit !== undefined && explicit !== '') return path.resolve(explicit);
  const xdg = env['XDG_CONFIG_HOME'];
  // The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
  if (xdg !== undefined && path.isAbsolute(xdg)) return path.join(xdg, 'soledad');
  return path.join(env['HOME'] !== undefined && env['HOME'] !== '' ? env['HOME'] : homedir(), '.config', 'soledad');
}

/**
 * Where the named profile lives (nothing is read or created).
 *
 * @example
 * locateProfile(process.env, 'work').file; // '~/.config/soledad/work/profile.json'
 */
export function locateProfile(env: NodeJS.ProcessEnv, name: string): ProfileLocation {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw new UsageError(`--profile: invalid name "${name}" (letters, digits, '.', '-', '_'; up to 64)`);
  }
  const root = configRoot(env);
  const dir = path.join(root, name);
  return { name, root, dir, file: path.join(dir, 'profile.json') };
}

function pathsOf(dir: string, data: Pick<ProfileData, 'secrets' | 'database'>): ProfilePaths {
  return {
    profile: path.join(dir, 'profile.json'),
    secrets: path.resolve(dir, data.secrets),
    database: path.resolve(dir, data.database),
    state: path.join(dir, 'state.json'),
  };
}

/**
 * True when the profile has a `profile.json`.
 *
 * @example
 * if (await profileExists(loc)) throw new UsageError('profile exists');
 */
export async function profileExists(loc: ProfileLocation): Promise<boolean> {
  try {
    await readFile(loc.file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function isProfileData(v: unknown): v is ProfileData {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return o['version'] === 1 && typeof o['server'] === 'string' && typeof o['uuid'] === 'string' &&
    typeof o['token'] === 'string' && typeof o['secrets'] === 'string' && typeof o['database'] === 'string' &&
    (o['ca'] === undefined || typeof o['ca'] === 'string');
}

/**
 * Read a profile; a missing one is a `ProfileNotFoundError` that says how to create it.
 *
 * @example
 * const profile = await loadProfile(locateProfile(process.env, 'default'));
 */
export async function loadProfile(loc: ProfileLocation): Promise<Profile> {
  let text: string;
  try {
    text = await readFile(loc.file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CliError('ProfileNotFoundError', `no profile '${loc.name}' in ${loc.root}`,
        "run 'soledad init --server <url> --uuid <uuid> --token <token>' (or 'soledad recover …') first");
    }
    throw new CliError('ProfileError', `cannot read ${loc.file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      'check the permissions of the profile directory', { cause: err });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw new CliError('ProfileError', `${loc.file} is not valid JSON`, "fix it or run 'soledad init --force …'", { cause });
  }
  if (!isProfileData(data)) {
    throw new CliError('ProfileError', `${loc.file} lacks server, uuid, token or file names`, "run 'soledad init --force …'");
  }
  return { name: loc.name, dir: loc.dir, data, paths: pathsOf(loc.dir, data) };
}

/**
 * Create the profile directory (and the root) private to the user.
 *
 * @example
 * const created = await ensureProfileDir(loc); // true when it did not exist
 */
export async function ensureProfileDir(loc: ProfileLocation): Promise<boolean> {
  await mkdir(loc.root, { recursive: true, mode: DIR_MODE });
  let created = true;
  try {
    await mkdir(loc.dir, { mode: DIR_MODE });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    created = false;
  }
  // mkdir's mode is filtered by the umask and ignored for existing directories: set it explicitly.
  await chmod(loc.dir, DIR_MODE);
  return created;
}

/**
 * Write a small JSON file atomically with mode 0600 (temporary file, then rename).
 *
 * @example
 * await writePrivateJson('/x/state.json', { lastSync: null });
 */
export async function writePrivateJson(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: FILE_MODE });
  await chmod(tmp, FILE_MODE);
  await rename(tmp, file);
}

/**
 * Write `profile.json` and return the profile.
 *
 * @example
 * const profile = await saveProfile(loc, { server, uuid, token });
 */
export async function saveProfile(
  loc: ProfileLocation,
  settings: { server: string; uuid: string; token: string; ca?: string },
): Promise<Profile> {
  const data: ProfileData = {
    version: 1,
    server: settings.server,
    uuid: settings.uuid,
    token: settings.token,
    ...(settings.ca !== undefined ? { ca: settings.ca } : {}),
    secrets: 'soledad.json',
    database: 'soledad.u1db',
    createdAt: new Date().toISOString(),
  };
  await writePrivateJson(loc.file, data);
  return { name: loc.name, dir: loc.dir, data, paths: pathsOf(loc.dir, data) };
}

/**
 * The paths a new profile will use, before `profile.json` exists.
 *
 * @example
 * const paths = plannedPaths(loc); // open Soledad here, then saveProfile()
 */
export function plannedPaths(loc: ProfileLocation): ProfilePaths {
  return pathsOf(loc.dir, { secrets: 'soledad.json', database: 'soledad.u1db' });
}

/** The last sync as `state.json` remembers it. */
export interface LastSync {
  /** When it finished (ISO 8601). */
  at: string;
  /** True when it completed. */
  ok: boolean;
  /** Error name when it failed. */
  error?: string;
  /** Documents uploaded. */
  docsSent: number;
  /** Documents downloaded and applied. */
  docsReceived: number;
  /** Downloaded documents that conflicted with local ones. */
  docsConflicted: number;
  /** Upload bytes. */
  bytesSent: number;
  /** Download bytes. */
  bytesReceived: number;
  /** How long it took (ms). */
  durationMs: number;
  /** Local generation after the sync. */
  localGeneration: number;
}

/** What `state.json` holds. */
export interface ProfileState {
  /** The last `soledad sync`, successful or not. */
  lastSync?: LastSync;
}

/**
 * Read `state.json` (an empty state when it is missing or unreadable: it is only a record).
 *
 * @example
 * const { lastSync } = await readState(profile);
 */
export async function readState(profile: Profile): Promise<ProfileState> {
  try {
    const v = JSON.parse(await readFile(profile.paths.state, 'utf8')) as unknown;
    return typeof v === 'object' && v !== null ? (v as ProfileState) : {};
  } catch {
    return {};
  }
}

/**
 * Replace `state.json`.
 *
 * @example
 * await writeState(profile, { lastSync });
 */
export async function writeState(profile: Profile, state: ProfileState): Promise<void> {
  await writePrivateJson(profile.paths.state, state);
}

/**
 * Make the profile's files private (SQLite creates its files with the process umask).
 *
 * @example
 * await restrictProfileFiles(profile.dir);
 */
export async function restrictProfileFiles(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isFile()) await chmod(path.join(dir, entry.name), FILE_MODE);
  }
}
