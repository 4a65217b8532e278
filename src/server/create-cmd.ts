/**
 * Running the configured `create_cmd` (fact sheet §1c): the command line is split on spaces, the database name
 * is appended as the last argument, and no shell is involved, as in the original's `exec_validated_cmd`.
 */
import { execFile } from 'node:child_process';
import { assertUserDbName } from './backends/common.js';

/** Result of a `create_cmd` run. */
export interface CreateCmdResult {
  /** True when the command exited with status 0. */
  readonly ok: boolean;
  /** Exit code, or `null` when it did not exit normally (signal, timeout, not found). */
  readonly code: number | null;
}

/**
 * Run `cmd <dbName>`; never throws for a failing command.
 *
 * @example
 * await runCreateCmd('sudo -u soledad-admin /usr/bin/soledad-create-userdb', 'user-0123abcd');
 */
export function runCreateCmd(cmd: string, dbName: string, timeoutMs = 60_000): Promise<CreateCmdResult> {
  assertUserDbName(dbName);
  const [file, ...args] = cmd.split(' ').filter((s) => s !== '');
  if (file === undefined) return Promise.resolve({ ok: false, code: null });
  return new Promise((resolve) => {
    execFile(file, [...args, dbName], { timeout: timeoutMs, windowsHide: true }, (err) => {
      if (err === null) return resolve({ ok: true, code: 0 });
      const code = typeof err.code === 'number' ? err.code : null;
      resolve({ ok: false, code });
    });
  });
}
