/**
 * `soledad passphrase change` and `soledad recovery-code create`.
 */
import type { Command } from 'commander';
import { contextOf, withSoledad } from './context.js';
import { withExamples } from './help.js';
import type { CliIo } from './output.js';
import { NEW_PASSPHRASE_ENV, PASSPHRASE_ENV, readSecret } from './prompt.js';

/**
 * Register the secrets commands.
 *
 * @example
 * registerSecretsCommands(program, processIo());
 */
export function registerSecretsCommands(program: Command, io: CliIo): void {
  const passphrase = program.command('passphrase').description('the passphrase that unlocks the storage secrets');
  withExamples(passphrase, 'soledad passphrase change');

  withExamples(passphrase.command('change')
    .description('protect the storage secrets with a new passphrase, here and on the server (no document is ' +
      `re-encrypted). Current passphrase: prompt or ${PASSPHRASE_ENV}; new one: prompt (asked twice) or ${NEW_PASSPHRASE_ENV}. ` +
      "Other devices keep working with their own copy; a new device needs the new passphrase.")
    .action(async (_opts: object, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const next = await readSecret(io, { envVar: NEW_PASSPHRASE_ENV, prompt: 'New passphrase: ', confirm: true });
        await sol.changePassphrase(next);
        ctx.out.result({ changed: true }, () => 'passphrase changed');
      });
    }),
  'soledad passphrase change', `${PASSPHRASE_ENV}=old ${NEW_PASSPHRASE_ENV}=new soledad passphrase change`);

  const recovery = program.command('recovery-code').description('recovery codes restore the secrets when the passphrase is lost');
  withExamples(recovery, 'soledad recovery-code create');

  withExamples(recovery.command('create')
    .description('create a recovery code and print it once on stdout: with the uuid it restores the secrets on a ' +
      "new device ('soledad recover'). Write it down: it is shown only once. Codes created earlier keep working.")
    .action(async (_opts: object, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const code = await sol.createRecoveryCode();
        ctx.out.result({ uuid: sol.uuid, recoveryCode: code }, () => code);
        ctx.out.note(`write this code down with the uuid ${sol.uuid}; it is shown only now`);
      });
    }),
  'soledad recovery-code create');
}
