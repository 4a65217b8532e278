#!/usr/bin/env node
/**
 * `soledad-server`: run the server, or manage user tokens.
 *
 * Exit codes: 0 success, 1 runtime failure, 2 bad configuration or arguments (the reason is one line on stderr).
 */
import { Command, CommanderError } from 'commander';
import { BadRequestError, ConfigError, SoledadError } from '../common/errors.js';
import { isValidUuid } from '../server/backends/common.js';
import { readConfig } from '../server/config.js';
import { createLogger, installSignalHandlers, openBackend, startServer } from '../server/main.js';
import { SERVER_VERSION } from '../server/version.js';
import { registerStorageCommands } from './storage-commands.js';

/** A command-line usage error: exit code 2. */
class UsageError extends Error {}

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000, w: 7 * 86_400_000 };

function parseDuration(text: string): number {
  const m = /^(\d+)\s*([smhdw])$/.exec(text.trim());
  if (m === null) throw new UsageError(`--expires: expected a duration like 30d, 12h, 45m, got "${text}"`);
  const ms = Number(m[1]) * DURATION_UNITS[m[2]!]!;
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new UsageError(`--expires: duration out of range: "${text}"`);
  return ms;
}

async function withBackend<T>(fn: (backend: Awaited<ReturnType<typeof openBackend>>) => Promise<T>): Promise<T> {
  const config = await readConfig(process.env);
  const backend = await openBackend(config);
  try {
    return await fn(backend);
  } finally {
    await backend.close();
  }
}

async function start(): Promise<void> {
  const config = await readConfig(process.env);
  const logger = createLogger(config);
  const server = await startServer({ config, logger });
  installSignalHandlers(server, logger);
}

const program = new Command('soledad-server')
  .description('Run the Soledad Server (the default command): the Users API over TLS on HTTPS_PORT (default 2323) and ' +
    'the Services API on 127.0.0.1:LOCAL_SERVICES_PORT (default 2525).')
  .version(SERVER_VERSION, '-v, --version', 'print the version and exit')
  .helpOption('-h, --help', 'print this help and exit')
  .exitOverride()
  .addHelpText('after', `
Configuration: the [soledad-server] section of $SOLEDAD_SERVER_CONFIG_FILE (default
/etc/soledad/soledad-server.conf; a missing file means defaults). Environment: HTTPS_PORT, LOCAL_SERVICES_PORT,
SOLEDAD_DATA_DIR, SOLEDAD_COUCH_URL, CERT_PATH, PRIVKEY_PATH, SOLEDAD_LOG_TO_STDOUT, LOG_LEVEL.`)
  .action(start);

program.command('start').description('start the server (the default)').action(start);

const token = program.command('token').description('manage user tokens (stored hashed, as the LEAP platform does)');
token.command('add')
  .description('create a token for a user and print it (the only time it is shown)')
  .requiredOption('--uuid <uuid>', 'the user\'s uuid, e.g. 32 hex digits')
  .option('--expires <duration>', 'validity, e.g. 30d, 12h, 45m (default: never expires)')
  .action(async (opts: { uuid: string; expires?: string }) => {
    if (!isValidUuid(opts.uuid)) throw new UsageError(`--uuid: invalid user id "${opts.uuid}" (letters, digits, - and _)`);
    const expiresAt = opts.expires === undefined ? undefined : new Date(Date.now() + parseDuration(opts.expires));
    const value = await withBackend((b) => b.tokens.addToken(opts.uuid, expiresAt === undefined ? {} : { expiresAt }));
    process.stdout.write(`${value}\n`);
    process.stderr.write(`token for user ${opts.uuid}${expiresAt === undefined ? '' : `, valid until ${expiresAt.toISOString()}`}\n`);
  });
token.command('revoke')
  .description('revoke a token, given the token or its sha512 hex (as printed by "token list")')
  .argument('<token-or-hash>')
  // A token made elsewhere may begin with "-": take it as the argument, not as an unknown option.
  .allowUnknownOption()
  .action(async (tokenOrHash: string) => {
    const removed = await withBackend((b) => b.tokens.revoke(tokenOrHash));
    if (!removed) {
      process.stderr.write('soledad-server: no such token\n');
      process.exitCode = 1;
      return;
    }
    process.stderr.write('token revoked\n');
  });
token.command('list')
  .description('list tokens: sha512 hash, user, created, expires (never the tokens themselves)')
  .action(async () => {
    const tokens = await withBackend((b) => b.tokens.list());
    for (const t of tokens) {
      process.stdout.write(`${t.hash}  ${t.userId}  ${t.createdAt?.toISOString() ?? '-'}  ${t.expiresAt?.toISOString() ?? 'never'}\n`);
    }
  });

registerStorageCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here with code 0; usage errors were already printed by commander.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    const usage = err instanceof UsageError || err instanceof ConfigError || err instanceof BadRequestError;
    const message = err instanceof SoledadError || err instanceof UsageError ? err.message : err instanceof Error ? err.message : String(err);
    process.stderr.write(`soledad-server: ${message}\n`);
    process.exitCode = usage ? 2 : 1;
  }
}
