/**
 * A real `soledad-server` process for the campaign, like test/e2e/server-process.ts, with what fault injection
 * needs on top: a soft file-size limit (`RLIMIT_FSIZE`, the kernel then refuses writes past it: a full disk
 * without root or loop mounts) that can be lifted while the process runs, the current RSS, and its pid.
 */
import { spawn, execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../e2e/server-process.js';
import { SqliteTokenStore } from '../../src/server/backends/sqlite/tokens.js';

const execFileAsync = promisify(execFile);
const CLI = join(import.meta.dirname, '../../src/cli/soledad-server.ts');
/** tsx by absolute URL: the process may run in another working directory. */
const TSX = import.meta.resolve('tsx');

/** Options of {@link startServer}. */
export interface ServerOptions {
  /** Extra lines of the `[soledad-server]` section. */
  config?: string;
  /** Text appended after the section (other sections). */
  extraSections?: string;
  /** Soft file-size limit of the process in KiB (`ulimit -S -f`). */
  fileSizeLimitKb?: number;
  /** Extra environment. */
  env?: NodeJS.ProcessEnv;
  /** Data directory to use (default: a new temporary one, removed by `stop`). */
  dataDir?: string;
  /** Working directory of the process (default: this one). */
  cwd?: string;
}

/** A running server process. */
export interface Server {
  readonly url: string;
  readonly servicesUrl: string;
  readonly certFile: string;
  readonly dataDir: string;
  readonly httpsPort: number;
  readonly servicesPort: number;
  readonly servicesToken: string;
  /** Mint a user token (`soledad-server token add`). */
  token(uuid: string, expires?: string): Promise<string>;
  /**
   * Mint a user token straight in the embedded engine's token file, as `token add` does but without starting a
   * process (SQLite lets the running server and this writer share the file).
   */
  mint(uuid: string): Promise<string>;
  /** Revoke a token (`soledad-server token revoke`). */
  revoke(token: string): Promise<void>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** Start again on the same ports and data. */
  start(): Promise<void>;
  /** SIGTERM, wait, remove the data (unless it was given). */
  stop(): Promise<void>;
  /** True while the process runs and listens. */
  alive(): boolean;
  /** Everything printed so far. */
  output(): string;
  pid(): number | undefined;
  /** Current and peak RSS (bytes) from /proc. */
  rss(): { current: number; peak: number } | undefined;
  /**
   * Change the soft file-size limit of the running process (`null`: unlimited) with prlimit; where prlimit is
   * missing, restart the process with the new limit instead. Resolves with how it was done.
   */
  setFileSizeLimit(kb: number | null): Promise<'prlimit' | 'restart'>;
}

/** Start a server process. */
export async function startServer(options: ServerOptions = {}): Promise<Server> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'soledad-rel-server-'));
  const ownsData = options.dataDir === undefined;
  const configFile = join(dataDir, 'soledad-server.conf');
  const servicesToken = `svc${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
  const tokensFile = join(dataDir, 'services.tokens');
  writeFileSync(tokensFile, `incoming:${servicesToken}\n`);
  writeFileSync(configFile, `[soledad-server]\ndata_dir = ${dataDir}\nservices_tokens_file = ${tokensFile}\n${options.config ?? ''}\n${options.extraSections ?? ''}`);
  const httpsPort = await freePort();
  const servicesPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...options.env,
    SOLEDAD_SERVER_CONFIG_FILE: configFile,
    SOLEDAD_DATA_DIR: dataDir,
    HTTPS_PORT: String(httpsPort),
    LOCAL_SERVICES_PORT: String(servicesPort),
    LOG_LEVEL: options.env?.['LOG_LEVEL'] ?? 'warn',
  };
  let child: ChildProcess | undefined;
  let fileSizeLimitKb = options.fileSizeLimitKb;
  let ready = false;
  let log = '';

  async function start(): Promise<void> {
    const args = ['--import', TSX, CLI];
    const proc = fileSizeLimitKb === undefined
      ? spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...(options.cwd === undefined ? {} : { cwd: options.cwd }) })
      : spawn('bash', ['-c', `ulimit -S -f ${fileSizeLimitKb} && exec "$0" "$@"`, process.execPath, ...args],
        { env, stdio: ['ignore', 'pipe', 'pipe'], ...(options.cwd === undefined ? {} : { cwd: options.cwd }) });
    child = proc;
    ready = false;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 60_000);
      proc.stdout!.on('data', (chunk: Buffer) => {
        log += chunk.toString();
        if (!ready && log.includes('Services API:')) {
          clearTimeout(timer);
          ready = true;
          resolve();
        }
      });
      proc.stderr!.on('data', (c: Buffer) => {
        log += c.toString();
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code ?? signal}:\n${log}`));
      });
    });
  }

  async function waitExit(proc: ChildProcess): Promise<void> {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  }

  const cli = async (...args: string[]): Promise<string> => {
    const { stdout } = await execFileAsync(process.execPath, ['--import', TSX, CLI, ...args], { env });
    return stdout.trim();
  };

  await start();
  return {
    url: `https://127.0.0.1:${httpsPort}/`,
    servicesUrl: `http://127.0.0.1:${servicesPort}/`,
    certFile: join(dataDir, 'tls', 'server.crt'),
    dataDir,
    httpsPort,
    servicesPort,
    servicesToken,
    token: (uuid, expires) => cli('token', 'add', '--uuid', uuid, ...(expires === undefined ? [] : ['--expires', expires])),
    async mint(uuid) {
      const store = new SqliteTokenStore(join(dataDir, 'tokens.db'));
      try {
        return await store.addToken(uuid);
      } finally {
        store.close();
      }
    },
    async revoke(token) {
      await cli('token', 'revoke', token);
    },
    async kill() {
      if (child === undefined) return;
      const proc = child;
      ready = false;
      proc.kill('SIGKILL');
      await waitExit(proc);
    },
    start,
    async stop() {
      if (child !== undefined) {
        const proc = child;
        ready = false;
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
        await waitExit(proc);
        clearTimeout(timer);
      }
      if (ownsData) rmSync(dataDir, { recursive: true, force: true });
    },
    alive: () => ready && child !== undefined && child.exitCode === null && child.signalCode === null,
    output: () => log,
    pid: () => child?.pid,
    rss() {
      if (child?.pid === undefined) return undefined;
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const kb = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
        return { current: kb('VmRSS'), peak: kb('VmHWM') };
      } catch {
        return undefined;
      }
    },
    async setFileSizeLimit(kb) {
      fileSizeLimitKb = kb ?? undefined;
      const pid = child?.pid;
      const value = kb === null ? 'unlimited' : String(kb * 1024);
      // Only the soft limit: raising it up to the (unlimited) hard limit needs no privilege.
      const r = pid === undefined ? undefined : spawnSync('prlimit', ['--pid', String(pid), `--fsize=${value}:`], { encoding: 'utf8' });
      if (r?.status === 0) return 'prlimit';
      if (child !== undefined) {
        const proc = child;
        ready = false;
        proc.kill('SIGTERM');
        await waitExit(proc);
      }
      await start();
      return 'restart';
    },
  };
}
