/** Start a bench peer process (a script printing `listening <port>`) and stop it again. */
import { spawn, type ChildProcess } from 'node:child_process';
import { ProcWatch } from '../util.js';

/** A running peer process. */
export interface Peer {
  readonly port: number;
  readonly proc: ChildProcess;
  readonly watch: ProcWatch;
  stop(): Promise<void>;
}

/** Spawn `node --import tsx <script> ...args` and wait until it prints `listening <port>`. */
export async function spawnPeer(script: string, args: readonly string[], cwd?: string): Promise<Peer> {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(cwd === undefined ? {} : { cwd }),
  });
  let log = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start:\n${log}`)), 30_000);
    proc.stdout!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      const m = /listening (\d+)/.exec(log);
      if (m !== null) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.stderr!.on('data', (chunk: Buffer) => { log += chunk.toString(); });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code}:\n${log}`));
    });
  });
  return {
    port,
    proc,
    watch: new ProcWatch(proc.pid!),
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
