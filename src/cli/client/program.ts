/**
 * The `soledad` command: program wiring, global options, and the one place errors become a line and an exit code.
 *
 * Exit codes: 0 success, 1 run-time failure, 2 usage error (unknown option or command, missing or bad argument).
 */
import { Command, CommanderError } from 'commander';
import { SERVER_VERSION } from '../../server/version.js';
import { registerBlobCommands } from './blobs.js';
import { registerDocCommands } from './docs.js';
import { debugDetails, errorLine, exitCodeOf } from './errors.js';
import { withExamples } from './help.js';
import { registerIncomingCommands } from './incoming.js';
import { registerIndexCommands } from './indexes.js';
import type { CliIo } from './output.js';
import { NEW_PASSPHRASE_ENV, PASSPHRASE_ENV, RECOVERY_CODE_ENV } from './prompt.js';
import { registerSecretsCommands } from './secrets.js';
import { registerSetupCommands } from './setup.js';
import { registerStatusCommand } from './status.js';
import { registerSyncCommand } from './sync.js';

const ENVIRONMENT = `
Environment:
  ${PASSPHRASE_ENV}       passphrase for scripts (otherwise a prompt with echo off; never a flag)
  ${NEW_PASSPHRASE_ENV}   new passphrase for 'soledad passphrase change'
  ${RECOVERY_CODE_ENV}    recovery code for 'soledad recover' when --code is not given
  SOLEDAD_TOKEN            auth token for 'init'/'recover' when --token is not given
  SOLEDAD_PROFILE          profile name when --profile is not given (default "default")
  SOLEDAD_CONFIG_DIR       directory of all profiles (default $XDG_CONFIG_HOME/soledad or ~/.config/soledad)

Files (per profile, directory mode 0700, files 0600):
  <config dir>/<profile>/profile.json   server, uuid, auth token (readable by you only), CA path
  <config dir>/<profile>/soledad.json   storage secrets, encrypted under your passphrase
  <config dir>/<profile>/soledad.u1db   documents (SQLCipher)
  <config dir>/<profile>/state.json     summary of the last sync

Exit codes: 0 success, 1 failure (one line on stderr: the error name and what to do), 2 usage error.`;

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Commander's own messages ("error: unknown option '--x'") as one `UsageError:` line with a pointer to help. */
function installUsageErrorFormat(cmd: Command): void {
  cmd.configureOutput({
    ...cmd.configureOutput(),
    outputError: (str, write) => {
      const text = str.replace(/^error:\s*/i, '').replace(/\s*\n\s*/g, ' ').trim();
      write(`UsageError: ${text} — see '${commandPath(cmd)} --help'\n`);
    },
  });
  for (const sub of cmd.commands) installUsageErrorFormat(sub);
}

/**
 * Build the whole `soledad` program, writing to `io`.
 *
 * @example
 * const program = buildProgram(processIo());
 * await program.parseAsync(process.argv);
 */
export function buildProgram(io: CliIo): Command {
  const program = new Command('soledad')
    .description('Soledad client: an end-to-end encrypted document store that syncs through a Soledad server. ' +
      'Everything is encrypted on this device; the server only stores ciphertext.')
    .version(SERVER_VERSION, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'print help and exit')
    .option('-p, --profile <name>', 'profile to use (default: $SOLEDAD_PROFILE or "default")')
    .option('--json', 'machine output: one JSON document on stdout; an error is one JSON line on stderr')
    .option('-q, --quiet', 'no progress and no notes on stderr')
    .option('--debug', 'print stack traces on errors')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride();
  program.addHelpText('after', ENVIRONMENT);
  withExamples(program,
    'soledad init --server https://localhost:2323/ --uuid 0123abcd --token "$TOKEN" --ca server.crt',
    `soledad doc create '{"subject":"hello"}'`,
    'soledad sync');

  registerSetupCommands(program, io);
  registerDocCommands(program, io);
  registerIndexCommands(program, io);
  registerSyncCommand(program, io);
  registerBlobCommands(program, io);
  registerIncomingCommands(program, io);
  registerSecretsCommands(program, io);
  registerStatusCommand(program, io);

  installUsageErrorFormat(program);
  return program;
}

/**
 * Run the program on `argv` (as `process.argv`: node, script, args…) and return the exit code. Never throws.
 *
 * @example
 * process.exitCode = await runCli(process.argv, processIo());
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with 0; everything else commander reports is a usage error.
      return err.exitCode === 0 ? 0 : 2;
    }
    const opts = program.opts<{ json?: boolean; debug?: boolean }>();
    io.stderr.write(`${errorLine(err, opts.json === true)}\n`);
    if (opts.debug === true) io.stderr.write(debugDetails(err));
    return exitCodeOf(err);
  }
}
