/**
 * Secrets the CLI asks for: from an environment variable (scripts), else from a terminal prompt with echo off.
 * Never from a command-line flag: flags end up in shell history and in `ps` output for every local user.
 */
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { CliError, UsageError } from './errors.js';
import type { CliIo } from './output.js';

/** What to ask for. */
export interface SecretRequest {
  /** Environment variable that supplies it without a prompt, e.g. `SOLEDAD_PASSPHRASE`. */
  envVar: string;
  /** Prompt shown on the terminal, e.g. `Passphrase: `. */
  prompt: string;
  /** Ask twice on a terminal and require both to match (new passphrases). */
  confirm?: boolean;
  /** Words for error messages, e.g. `passphrase`. */
  what?: string;
}

/**
 * Read a line from the terminal without echoing it. Ctrl-C or Ctrl-D cancel with a `CancelledError`.
 *
 * @example
 * const pw = await askHidden(io, 'Passphrase: ');
 */
export function askHidden(io: CliIo, question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let muted = false;
    const sink = new Writable({
      write(chunk: Buffer | string, _encoding: BufferEncoding, callback: (err?: Error | null) => void) {
        if (!muted) io.stderr.write(chunk);
        callback();
      },
    });
    const rl = createInterface({ input: io.stdin, output: sink, terminal: true });
    let settled = false;
    const cancel = (): void => {
      if (settled) return;
      settled = true;
      io.stderr.write('\n');
      rl.close();
      reject(new CliError('CancelledError', 'cancelled at the prompt', 'nothing was changed'));
    };
    rl.on('SIGINT', cancel);
    rl.on('close', cancel);
    rl.question(question, (answer) => {
      settled = true;
      rl.close();
      io.stderr.write('\n');
      resolve(answer);
    });
    // The question is written synchronously above; from here on, typed characters must not be echoed.
    muted = true;
  });
}

/**
 * Get a secret from `request.envVar` or a hidden prompt. Fails with a usage error when neither is possible
 * (no variable and stdin is not a terminal), and refuses an empty secret.
 *
 * @example
 * const passphrase = await readSecret(io, { envVar: 'SOLEDAD_PASSPHRASE', prompt: 'Passphrase: ' });
 */
export async function readSecret(io: CliIo, request: SecretRequest): Promise<string> {
  const what = request.what ?? 'passphrase';
  const fromEnv = io.env[request.envVar];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (io.stdin.isTTY !== true) {
    throw new UsageError(`no ${what}: stdin is not a terminal`, { hint: `set ${request.envVar} for scripts` });
  }
  const first = await askHidden(io, request.prompt);
  if (first === '') throw new UsageError(`the ${what} must not be empty`);
  if (request.confirm === true) {
    const second = await askHidden(io, `Repeat ${request.prompt.charAt(0).toLowerCase()}${request.prompt.slice(1)}`);
    if (second !== first) throw new CliError('MismatchError', `the two ${what}s differ`, 'run the command again; nothing was changed');
  }
  return first;
}

/** Environment variable with the passphrase of an existing profile (and the new one for `init`/`recover`). */
export const PASSPHRASE_ENV = 'SOLEDAD_PASSPHRASE';
/** Environment variable with the new passphrase for `soledad passphrase change`. */
export const NEW_PASSPHRASE_ENV = 'SOLEDAD_NEW_PASSPHRASE';
/** Environment variable with the recovery code for `soledad recover` when `--code` is not given. */
export const RECOVERY_CODE_ENV = 'SOLEDAD_RECOVERY_CODE';
