/**
 * A real `soledad-server` process for end-to-end tests: its own data dir and config, free loopback ports,
 * started with the same CLI an operator runs, killed with real signals.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const CLI = join(import.meta.dirname, '../../src/cli/soledad-server.ts');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface ServerProcess {
  readonly url: string;
  readonly servicesUrl: string;
  readonly certFile: string;
  readonly dataDir: string;
  readonly env: NodeJS.ProcessEnv;
  /** Mint a token with `soledad-server token add`. */
  token(uuid: string): Promise<string>;
  /** SIGKILL the process (no graceful anything) and wait for it to die. */
  kill(): Promise<void>;
  /** Start it again on the same ports and data. */
  start(): Promise<void>;
  /** SIGTERM, wait, remove the data. */
  stop(): Promise<void>;
  /** Everything the process printed (stdout + stderr). */
  output(): string;
  /** Peak resident set size of the running process in bytes (Linux VmHWM), or undefined. */
  peakRss(): number | undefined;
  /** Process id of the running server (benchmarks read its CPU time and memory from /proc). */
  pid(): number | undefined;
}

export async function startServerProcess(extraConfig = ''): Promise<ServerProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'soledad-e2e-server-'));
  const configFile = join(dataDir, 'soledad-server.conf');
  writeFileSync(configFile, `[soledad-server]\ndata_dir = ${dataDir}\n${extraConfig}`);
  const httpsPort = await freePort();
  const servicesPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SOLEDAD_SERVER_CONFIG_FILE: configFile,
    SOLEDAD_DATA_DIR: dataDir,
    HTTPS_PORT: String(httpsPort),
    LOCAL_SERVICES_PORT: String(servicesPort),
  };
  let child: ChildProcess | undefined;
  let log = '';

  async function start(): Promise<void> {
    // SOLEDAD_SERVER_NODE_ARGS adds node flags (profiling a benchmark: `--cpu-prof --cpu-prof-dir=…`).
    const nodeArgs = (process.env.SOLEDAD_SERVER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
    const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', CLI], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 30_000);
      const onData = (chunk: Buffer) => {
        log += chunk.toString();
        if (log.includes('Services API:')) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', (c: Buffer) => { log += c.toString(); });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}:\n${log}`));
      });
    });
  }

  async function waitExit(proc: ChildProcess): Promise<void> {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  }

  await start();
  return {
    url: `https://127.0.0.1:${httpsPort}/`,
    servicesUrl: `http://127.0.0.1:${servicesPort}/`,
    certFile: join(dataDir, 'tls', 'server.crt'),
    dataDir,
    env,
    async token(uuid: string) {
      const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', CLI, 'token', 'add', '--uuid', uuid], { env });
      return stdout.trim();
    },
    async kill() {
      if (!child) return;
      const proc = child;
      proc.kill('SIGKILL');
      await waitExit(proc);
    },
    start,
    async stop() {
      if (child) {
        const proc = child;
        proc.kill('SIGTERM');
        await waitExit(proc);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
    output: () => log,
    pid: () => child?.pid,
    peakRss() {
      if (child?.pid === undefined) return undefined;
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
        return kb === undefined ? undefined : Number(kb) * 1024;
      } catch {
        return undefined;
      }
    },
  };
}
