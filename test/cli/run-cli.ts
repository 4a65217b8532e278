/**
 * Runs the `soledad` command as a child process, the way a user or a script does (stdin/stdout/stderr are pipes,
 * so nothing is a TTY), with its own config directory and nothing inherited from the caller's SOLEDAD_* variables.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

/** The CLI entry point. */
export const SOLEDAD_CLI = join(import.meta.dirname, '../../src/cli/soledad.ts');
const ROOT = join(import.meta.dirname, '../..');

/** What a run printed and how it ended. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link runSoledad}. */
export interface RunOptions {
  /** Extra environment (SOLEDAD_PASSPHRASE, SOLEDAD_CONFIG_DIR…). */
  env?: Record<string, string>;
  /** Text written to stdin (then closed). */
  input?: string;
}

/**
 * Run `soledad <args>`.
 *
 * @example
 * const r = await runSoledad(['doc', 'list', '--json'], { env: { SOLEDAD_CONFIG_DIR: dir, SOLEDAD_PASSPHRASE: 'pw' } });
 */
export function runSoledad(args: readonly string[], options: RunOptions = {}): Promise<CliResult> {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SOLEDAD_')) base[k] = v;
  const env = { ...base, ...options.env };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', SOLEDAD_CLI, ...args], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Lines of a text, without the empty last one. */
export function lines(text: string): string[] {
  return text.split('\n').filter((l, i, all) => !(l === '' && i === all.length - 1));
}
