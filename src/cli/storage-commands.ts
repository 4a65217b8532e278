/**
 * Storage operations of `soledad-server`: `migrate` (create or check the schema), `check` (health of every
 * store), `export-user` and `import-user` (move one user between engines). Registered on the main program by
 * {@link registerStorageCommands}.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Command } from 'commander';
import { BadRequestError, ConfigError } from '../common/errors.js';
import { isValidUuid } from '../server/backends/common.js';
import { blobStoreOf, openConfiguredBackend } from '../server/backends/index.js';
import { PgDatabase } from '../server/backends/postgres/connection.js';
import { ensurePgSchema } from '../server/backends/postgres/schema.js';
import { DEFAULT_EXPORT_NAMESPACES, exportUser, importUser } from '../server/backends/transfer.js';
import type { Backend } from '../server/backends/types.js';
import { readConfig, type ServerConfig } from '../server/config.js';

function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function withConfiguredBackend<T>(fn: (backend: Backend, config: ServerConfig) => Promise<T>): Promise<T> {
  const config = await readConfig(process.env);
  const backend = await openConfiguredBackend(config);
  try {
    return await fn(backend, config);
  } finally {
    await backend.close();
  }
}

async function migrate(): Promise<void> {
  const config = await readConfig(process.env);
  if (config.backend === 'postgres') {
    if (config.postgresUrl === null) throw new ConfigError('postgres_url: required with backend = postgres');
    const db = new PgDatabase({ url: config.postgresUrl, schema: config.postgresSchema });
    try {
      const state = await ensurePgSchema(db);
      say(`postgres schema "${config.postgresSchema}": ${state.created ? 'created' : 'already'} at version ${state.version}`);
    } finally {
      await db.close();
    }
    return;
  }
  // The other engines create their files or databases on open and refuse unknown schemas there.
  await withConfiguredBackend(async (backend) => {
    say(`${backend.name}: storage ready`);
  });
}

async function check(): Promise<void> {
  await withConfiguredBackend(async (backend, config) => {
    say(`backend ${backend.name}: schema ok`);
    await backend.documents.databaseExists('user-soledad-healthcheck');
    say('user databases: reachable');
    await backend.shared.getDoc('soledad-healthcheck');
    say('shared database: reachable');
    say(`tokens: ${(await backend.tokens.list()).length} stored`);
    if (config.blobs) {
      const store = blobStoreOf(backend, config);
      try {
        await store.usage('soledad-healthcheck');
        say(backend.blobs !== undefined ? `blobs: kept by ${backend.name}` : `blobs: filesystem under ${config.blobsPath}`);
      } finally {
        if (backend.blobs === undefined) await store.close();
      }
    }
  });
}

async function exportCmd(uuid: string, opts: { output?: string; namespace?: string[] }): Promise<void> {
  if (!isValidUuid(uuid)) throw new BadRequestError(`uuid: invalid user id "${uuid}"`);
  await withConfiguredBackend(async (backend, config) => {
    const store = config.blobs ? blobStoreOf(backend, config) : undefined;
    const out = opts.output === undefined || opts.output === '-' ? process.stdout : createWriteStream(opts.output, { mode: 0o600 });
    try {
      for await (const line of exportUser(backend, uuid, {
        ...(store === undefined ? {} : { blobs: store }),
        namespaces: opts.namespace ?? DEFAULT_EXPORT_NAMESPACES,
      })) {
        if (!out.write(line)) await once(out, 'drain');
      }
    } finally {
      if (out !== process.stdout) {
        out.end();
        await once(out, 'finish');
      }
      if (store !== undefined && backend.blobs === undefined) await store.close();
    }
  });
}

async function importCmd(file: string): Promise<void> {
  await withConfiguredBackend(async (backend, config) => {
    const store = config.blobs ? blobStoreOf(backend, config) : undefined;
    try {
      const input = file === '-' ? process.stdin : createReadStream(file);
      const r = await importUser(backend, input, store === undefined ? {} : { blobs: store });
      say(`imported user ${r.uuid}: ${r.docs} documents, ${r.blobs} blobs`);
    } finally {
      if (store !== undefined && backend.blobs === undefined) await store.close();
    }
  });
}

/**
 * Add `migrate`, `check`, `export-user` and `import-user` to the `soledad-server` program.
 *
 * @example
 * registerStorageCommands(program);
 */
export function registerStorageCommands(program: Command): void {
  program.command('migrate')
    .description('create the storage schema if missing, or check its version (refuses an unknown one)')
    .action(migrate);
  program.command('check')
    .description('check that every store (user databases, shared, tokens, blobs) is reachable and of a known schema')
    .action(check);
  program.command('export-user')
    .description('write one user\'s documents and blobs (ciphertext as stored) as JSON lines')
    .argument('<uuid>', 'the user\'s uuid')
    .option('-o, --output <file>', 'write to this file (default: standard output)')
    .option('--namespace <ns...>', `blob namespaces to export (default: ${DEFAULT_EXPORT_NAMESPACES.join(' ')})`)
    .action(exportCmd);
  program.command('import-user')
    .description('read an export-user file into the configured backend (the user must have no documents there yet)')
    .argument('<file>', 'the file written by export-user, or - for standard input')
    .action(importCmd);
}
