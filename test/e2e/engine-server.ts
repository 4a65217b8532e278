/**
 * A real `soledad-server` process on one of the test engines (`test/backends/engines.ts`), with a scratch
 * directory for the devices that talk to it: what the per-engine end-to-end suites start in `before` and remove
 * in `after`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverEngineConfig, type ServerEngineConfig, type TestEngine } from '../backends/engines.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

/** A server on an engine and a scratch directory. */
export interface EngineServer {
  /** The engine's configuration (and how to look at what the server stored: `engineConfig.open`). */
  readonly engineConfig: ServerEngineConfig;
  readonly server: ServerProcess;
  /** An empty directory for device files. */
  readonly work: string;
  /** Stop the server, remove the engine's data and the scratch directory. */
  close(): Promise<void>;
}

/**
 * Start a server on `engine`; `extraConfig` adds `[soledad-server]` lines.
 *
 * @example
 * let env: EngineServer;
 * before(async () => { env = await startEngineServer('postgres'); });
 * after(() => env?.close());
 */
export async function startEngineServer(engine: TestEngine, extraConfig = ''): Promise<EngineServer> {
  const engineConfig = await serverEngineConfig(engine);
  let server: ServerProcess;
  try {
    server = await startServerProcess(engineConfig.config + extraConfig);
  } catch (err) {
    await engineConfig.teardown();
    throw err;
  }
  const work = mkdtempSync(join(tmpdir(), `soledad-e2e-${engine}-`));
  return {
    engineConfig,
    server,
    work,
    async close() {
      await server.stop();
      await engineConfig.teardown();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
