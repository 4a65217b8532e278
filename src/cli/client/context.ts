/**
 * What every command needs: the global options, the output, the profile, and an open {@link Soledad}.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { Soledad, type SoledadOptions } from '../../client/soledad.js';
import { parseJsonObject } from '../../common/u1db/document.js';
import type { JsonObject } from '../../common/u1db/json.js';
import { CliError, UsageError } from './errors.js';
import { Output, type CliIo } from './output.js';
import { DEFAULT_PROFILE, loadProfile, locateProfile, type Profile, type ProfileLocation } from './profile.js';
import { PASSPHRASE_ENV, readSecret } from './prompt.js';

/** Options every command accepts (defined once on the program). */
export interface GlobalOptions {
  /** `--profile <name>`. */
  profile?: string;
  /** `--json`. */
  json?: boolean;
  /** `--quiet`. */
  quiet?: boolean;
  /** `--debug`. */
  debug?: boolean;
}

/**
 * A command's run-time context.
 *
 * @example
 * const ctx = contextOf(cmd, io);
 * await withSoledad(ctx, async (sol) => ctx.out.result(await sol.listIndexes(), () => '…'));
 */
export interface Ctx {
  /** Streams and environment. */
  io: CliIo;
  /** Where results and notes go. */
  out: Output;
  /** Where the selected profile lives. */
  location: ProfileLocation;
  /** `--debug`. */
  debug: boolean;
}

/**
 * Build the context from a command's options merged with the program's.
 *
 * @example
 * .action(async (opts, cmd: Command) => { const ctx = contextOf(cmd, io); … })
 */
export function contextOf(cmd: Command, io: CliIo): Ctx {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const name = g.profile ?? io.env['SOLEDAD_PROFILE'] ?? DEFAULT_PROFILE;
  return {
    io,
    out: new Output(io, g.json === true, g.quiet === true),
    location: locateProfile(io.env, name === '' ? DEFAULT_PROFILE : name),
    debug: g.debug === true,
  };
}

/**
 * The options {@link Soledad.open} needs for a profile.
 *
 * @example
 * const sol = await Soledad.open(soledadOptions(profile, passphrase));
 */
export function soledadOptions(profile: Profile, passphrase: string): SoledadOptions {
  return {
    uuid: profile.data.uuid,
    passphrase,
    secretsPath: profile.paths.secrets,
    localDbPath: profile.paths.database,
    serverUrl: profile.data.server,
    authToken: profile.data.token,
    ...(profile.data.ca !== undefined ? { certFile: profile.data.ca } : {}),
  };
}

/**
 * Load the profile, ask for the passphrase, open the store, run `fn`, and always close the store.
 *
 * @example
 * await withSoledad(ctx, async (sol, profile) => { await sol.sync(); });
 */
export async function withSoledad<T>(ctx: Ctx, fn: (sol: Soledad, profile: Profile) => Promise<T>): Promise<T> {
  const profile = await loadProfile(ctx.location);
  const passphrase = await readSecret(ctx.io, { envVar: PASSPHRASE_ENV, prompt: `Passphrase for ${profile.data.uuid}: ` });
  const sol = await Soledad.open(soledadOptions(profile, passphrase));
  try {
    return await fn(sol, profile);
  } finally {
    await sol.close();
  }
}

/**
 * Read all of stdin as UTF-8.
 *
 * @example
 * const text = await readStdin(io);
 */
export async function readStdin(io: CliIo): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A JSON object from an argument: the text itself, `-` for stdin, or `@file` for a file.
 *
 * @example
 * const content = await jsonArgument(io, '{"subject":"hi"}');
 */
export async function jsonArgument(io: CliIo, arg: string): Promise<JsonObject> {
  let text: string;
  if (arg === '-') {
    text = await readStdin(io);
  } else if (arg.startsWith('@')) {
    const file = arg.slice(1);
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new CliError('FileError', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'check the path', { cause: err });
    }
  } else {
    text = arg;
  }
  return parseJsonObject(text);
}

/**
 * Check a uuid given on the command line: letters, digits, `-` and `_`, as the server accepts.
 *
 * @example
 * checkUuid('0123abcd'); // returns it, or throws a UsageError
 */
export function checkUuid(uuid: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(uuid)) throw new UsageError(`--uuid: invalid user id "${uuid}" (letters, digits, '-' and '_')`);
  return uuid;
}

/**
 * Check a server URL given on the command line.
 *
 * @example
 * checkServerUrl('https://soledad.example.org:2323/');
 */
export function checkServerUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--server: not a URL: "${text}"`, { hint: 'e.g. https://soledad.example.org:2323/' });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`--server: expected https:// (or http://), got "${url.protocol}"`);
  return url.href;
}
