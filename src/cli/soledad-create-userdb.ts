#!/usr/bin/env node
/**
 * `soledad-create-userdb <dbname>`: create a user database in the configured backend (the command the server's
 * `create_cmd` usually names). Configuration as the server: `SOLEDAD_SERVER_CONFIG_FILE`, `SOLEDAD_DATA_DIR`.
 * Exit codes: 0 created or already present, 1 failure, 2 bad configuration or arguments.
 */
import { Command } from 'commander';
import { ConfigError, SoledadError } from '../common/errors.js';
import { isValidUserDbName } from '../server/backends/common.js';
import { readConfig } from '../server/config.js';
import { openBackend } from '../server/main.js';
import { SERVER_VERSION } from '../server/version.js';

const program = new Command('soledad-create-userdb')
  .description('Create a user database (user-<uuid>) in the backend configured for soledad-server.')
  .version(SERVER_VERSION, '-v, --version')
  .argument('<dbname>', 'database to create, e.g. user-0123456789abcdef0123456789abcdef')
  .action(async (dbName: string) => {
    if (!isValidUserDbName(dbName)) {
      process.stderr.write(`soledad-create-userdb: invalid database name "${dbName}" (expected user-<uuid>)\n`);
      process.exitCode = 2;
      return;
    }
    const config = await readConfig(process.env);
    const backend = await openBackend(config);
    try {
      const { created } = await backend.documents.ensureDatabase(dbName);
      process.stdout.write(`${dbName} ${created ? 'created' : 'already exists'}\n`);
    } finally {
      await backend.close();
    }
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`soledad-create-userdb: ${err instanceof SoledadError ? err.message : String(err)}\n`);
  process.exitCode = err instanceof ConfigError ? 2 : 1;
}
