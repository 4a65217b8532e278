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
process.exitCode = await runCli(process.argv, processIo());
