#!/usr/bin/env node
/**
 * `soledad`: the client command line. Run `soledad --help` for the commands; see `src/cli/client/` for each group.
 *
 * Exit codes: 0 success, 1 run-time failure, 2 usage error.
 */
import { processIo } from './client/output.js';
import { runCli } from './client/program.js';

// Every file this process creates (profile, secrets, databases, exported blobs) is private to the user.
process.umask(0o077);
// A reader that went away (`soledad doc list | head`) is not an error of ours: stop quietly, as Unix tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  });
}
process.exitCode = await runCli(process.argv, processIo());
