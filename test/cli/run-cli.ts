/**
 * Runs the `soledad` command as a child process, the way a user or a script does (stdin/stdout/stderr are pipes,
 * so nothing is a TTY), with its own config directory and nothing inherited from the caller's SOLEDAD_* variables.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
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

/** Spawn the CLI with pipes, the caller's environment minus its SOLEDAD_* variables, plus `options.env`. */
function spawnCli(args: readonly string[], options: RunOptions): ChildProcessWithoutNullStreams {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SOLEDAD_')) env[k] = v;
  return spawn(process.execPath, ['--import', 'tsx', SOLEDAD_CLI, ...args], {
    cwd: ROOT, env: { ...env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/**
 * Run `soledad <args>`.
 *
 * @example
 * const r = await runSoledad(['doc', 'list', '--json'], { env: { SOLEDAD_CONFIG_DIR: dir, SOLEDAD_PASSPHRASE: 'pw' } });
 */
export function runSoledad(args: readonly string[], options: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, options);
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

/** A `soledad` process left running (e.g. `incoming process --watch`). */
export interface RunningCli {
  /** Resolves with the first stdout line matching `pattern` (rejects after `timeoutMs` or if the process ends). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Send a signal (SIGINT is Ctrl-C) and resolve with how the process ended. */
  stop(signal?: NodeJS.Signals): Promise<CliResult>;
}

/**
 * Start `soledad <args>` and leave it running.
 *
 * @example
 * const watch = startSoledad(['incoming', 'process', '--watch'], { env });
 * await watch.waitForLine(/^processed /);
 * const r = await watch.stop('SIGINT');
 */
export function startSoledad(args: readonly string[], options: RunOptions = {}): RunningCli {
  const child = spawnCli(args, options);
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
    for (const w of waiters) w();
  });
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  const ended = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      for (const w of waiters) w();
      resolve({ code, stdout, stderr });
    });
  });
  child.stdin.end(options.input ?? '');
  return {
    waitForLine(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = lines(stdout).find((l) => pattern.test(l));
          if (hit !== undefined) {
            done();
            resolve(hit);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(new Error(`soledad ended before printing ${pattern}:\n${stdout}\n${stderr}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms:\n${stdout}\n${stderr}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop(signal = 'SIGINT') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return ended;
    },
  };
}
