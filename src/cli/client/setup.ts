/**
 * `soledad init` and `soledad recover`: create a profile on this device.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { Soledad } from '../../client/soledad.js';
import { checkServerUrl, checkUuid, contextOf, soledadOptions, type Ctx } from './context.js';
import { CliError, UsageError } from './errors.js';
import { withExamples } from './help.js';
import type { CliIo } from './output.js';
import {
  ensureProfileDir, loadProfile, plannedPaths, profileExists, restrictProfileFiles, saveProfile, type Profile,
} from './profile.js';
import { PASSPHRASE_ENV, RECOVERY_CODE_ENV, readSecret } from './prompt.js';

/** Options shared by `init` and `recover`. */
interface ConnectOptions {
  server: string;
  uuid: string;
  token?: string;
  ca?: string;
  force?: boolean;
}

function addConnectOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--server <url>', 'server base URL, e.g. https://soledad.example.org:2323/')
    .requiredOption('--uuid <uuid>', "the user's uuid")
    .addOption(new Option('--token <token>', 'the auth token; stored in profile.json (mode 0600)').env('SOLEDAD_TOKEN'))
    .option('--ca <cert>', "PEM certificate to trust (the server's self-signed certificate or its CA)")
    .option('--force', 'replace the settings of an existing profile of the same uuid (its secrets and documents stay)');
}

/** Checks the options and the profile directory; returns the previous profile when `--force` replaces one. */
async function prepare(ctx: Ctx, opts: ConnectOptions): Promise<{ server: string; uuid: string; token: string; ca?: string; previous?: Profile }> {
  const server = checkServerUrl(opts.server);
  const uuid = checkUuid(opts.uuid);
  if (opts.token === undefined || opts.token === '') {
    throw new UsageError('missing --token', { hint: 'pass --token <token> or set SOLEDAD_TOKEN' });
  }
  let ca: string | undefined;
  if (opts.ca !== undefined) {
    ca = path.resolve(opts.ca);
    try {
      await readFile(ca);
    } catch (err) {
      throw new CliError('FileError', `cannot read --ca ${ca} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'give the PEM file of the server certificate', { cause: err });
    }
  }
  let previous: Profile | undefined;
  if (await profileExists(ctx.location)) {
    if (opts.force !== true) {
      throw new UsageError(`profile '${ctx.location.name}' already exists in ${ctx.location.dir}`,
        { hint: 'add --force to replace its server and token (secrets and documents stay), or choose --profile <name>' });
    }
    previous = await loadProfile(ctx.location);
    if (previous.data.uuid !== uuid) {
      throw new UsageError(`profile '${ctx.location.name}' belongs to uuid ${previous.data.uuid}, not ${uuid}`,
        { hint: 'choose another --profile <name>' });
    }
  }
  return { server, uuid, token: opts.token, ...(ca !== undefined ? { ca } : {}), ...(previous !== undefined ? { previous } : {}) };
}

/** Runs `open` in a fresh or existing profile directory; a directory it created is removed again on failure. */
async function createProfile(
  ctx: Ctx,
  settings: { server: string; uuid: string; token: string; ca?: string },
  open: (opts: ReturnType<typeof soledadOptions>) => Promise<Soledad>,
  passphrase: string,
): Promise<Profile> {
  const created = await ensureProfileDir(ctx.location);
  const paths = plannedPaths(ctx.location);
  const draft: Profile = {
    name: ctx.location.name,
    dir: ctx.location.dir,
    paths,
    data: { version: 1, ...settings, secrets: path.basename(paths.secrets), database: path.basename(paths.database), createdAt: '' },
  };
  try {
    const sol = await open(soledadOptions(draft, passphrase));
    await sol.close();
  } catch (err) {
    if (created) await rm(ctx.location.dir, { recursive: true, force: true });
    throw err;
  }
  const profile = await saveProfile(ctx.location, settings);
  await restrictProfileFiles(ctx.location.dir);
  return profile;
}

/**
 * Register `soledad init` and `soledad recover`.
 *
 * @example
 * registerSetupCommands(program, processIo());
 */
export function registerSetupCommands(program: Command, io: CliIo): void {
  const init = addConnectOptions(program.command('init'))
    .summary('create a profile for a user on a server (first or additional device)')
    .description('create a profile: remember the server, uuid and token, and unlock the storage secrets with the ' +
      'passphrase (fetched from the server on a second device, generated on the first). The passphrase comes from ' +
      `a prompt, or from ${PASSPHRASE_ENV} in scripts; it is never stored.`)
    .action(async (opts: ConnectOptions, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const s = await prepare(ctx, opts);
      const passphrase = await readSecret(io, { envVar: PASSPHRASE_ENV, prompt: `Passphrase for ${s.uuid}: `, confirm: s.previous === undefined });
      const settings = { server: s.server, uuid: s.uuid, token: s.token, ...(s.ca !== undefined ? { ca: s.ca } : {}) };
      let generated = false;
      const profile = await createProfile(ctx, settings, async (o) => {
        const sol = await Soledad.open(o);
        generated = sol.secretsSource === 'generated';
        return sol;
      }, passphrase);
      if (generated) {
        // The server held no secrets under this passphrase: fine on a first device, a typo on any other.
        ctx.out.note('new storage secrets were generated (first device of this user). If this user already has ' +
          "a device, the passphrase was mistyped: delete this profile and run 'soledad init' again");
      }
      ctx.out.result({ profile: profile.name, dir: profile.dir, uuid: profile.data.uuid, server: profile.data.server },
        () => `initialized profile '${profile.name}' for ${profile.data.uuid} in ${profile.dir}`);
      ctx.out.note("next: 'soledad sync' to exchange documents with the server");
    });
  withExamples(init,
    'soledad init --server https://localhost:2323/ --uuid 0123abcd --token "$TOKEN" --ca server.crt',
    'SOLEDAD_PASSPHRASE=... soledad --profile laptop init --server https://localhost:2323/ --uuid 0123abcd --token "$TOKEN"');

  const recover = addConnectOptions(program.command('recover'))
    .summary('create a profile from a recovery code when the passphrase is lost')
    .description('create a profile on a new device from the uuid and a recovery code (when the passphrase is lost): ' +
      `the secrets are restored from the server and protected by a new passphrase (prompt or ${PASSPHRASE_ENV})`)
    .option('--code <code>', `the recovery code (visible in 'ps' and shell history: prefer ${RECOVERY_CODE_ENV} or the prompt)`)
    .action(async (opts: ConnectOptions & { code?: string }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const s = await prepare(ctx, opts);
      const code = opts.code !== undefined && opts.code !== ''
        ? opts.code
        : await readSecret(io, { envVar: RECOVERY_CODE_ENV, prompt: 'Recovery code: ', what: 'recovery code' });
      const passphrase = await readSecret(io, { envVar: PASSPHRASE_ENV, prompt: 'New passphrase: ', confirm: true });
      const settings = { server: s.server, uuid: s.uuid, token: s.token, ...(s.ca !== undefined ? { ca: s.ca } : {}) };
      const profile = await createProfile(ctx, settings, (o) => {
        const { passphrase: _unused, ...rest } = o;
        return Soledad.recover({ ...rest, recoveryCode: code, newPassphrase: passphrase });
      }, passphrase);
      ctx.out.result({ profile: profile.name, dir: profile.dir, uuid: profile.data.uuid, server: profile.data.server, recovered: true },
        () => `recovered the secrets of ${profile.data.uuid} into profile '${profile.name}' (${profile.dir})`);
      ctx.out.note("next: 'soledad sync' to download your documents; the passphrase you just chose unlocks them from now on");
    });
  withExamples(recover,
    'soledad --profile phone recover --server https://localhost:2323/ --uuid 0123abcd --token "$TOKEN" --ca server.crt --code "$CODE"');
}
