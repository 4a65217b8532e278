/**
 * `soledad index …`: U1DB indexes over document fields, and queries against them.
 */
import type { Command } from 'commander';
import { contextOf, withSoledad } from './context.js';
import { withExamples } from './help.js';
import { docJson, docLine, lineWidth, type CliIo } from './output.js';

/**
 * Register `soledad index …`.
 *
 * @example
 * registerIndexCommands(program, processIo());
 */
export function registerIndexCommands(program: Command, io: CliIo): void {
  const index = program.command('index').description('indexes: create, list, delete, query, keys, count, range');
  withExamples(index, "soledad index create by-subject 'lower(subject)'", 'soledad index query by-subject "hel*"');

  withExamples(index.command('create')
    .description('create an index over one or more expressions: a field (subject, a.b), lower(f), number(f, width), ' +
      'bool(f), split_words(f), combine(f, g), is_null(f)')
    .argument('<name>', 'index name')
    .argument('<expression...>', 'one expression per index column')
    .action(async (name: string, expressions: string[], _opts: object, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        await sol.createIndex(name, ...expressions);
        ctx.out.result({ name, expressions }, () => `created index ${name} (${expressions.join(', ')})`);
      });
    }),
  "soledad index create by-subject 'lower(subject)'", 'soledad index create by-tag-date tags date');

  withExamples(index.command('list')
    .description('list indexes and their expressions')
    .action(async (_opts: object, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const all = await sol.listIndexes();
        ctx.out.result(all.map(([name, expressions]) => ({ name, expressions })),
          () => all.map(([name, expressions]) => `${name}  ${expressions.join(', ')}`));
        if (all.length === 0) ctx.out.note("no indexes (indexes are local to each device: create them on each one)");
      });
    }),
  'soledad index list');

  withExamples(index.command('delete')
    .description('delete an index (documents are not touched)')
    .argument('<name>', 'index name')
    .action(async (name: string, _opts: object, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        await sol.deleteIndex(name);
        ctx.out.result({ name, deleted: true }, () => `deleted index ${name}`);
      });
    }),
  'soledad index delete by-subject');

  withExamples(index.command('query')
    .description("documents whose index values match, one value per column; '*' matches anything and 'ab*' a prefix")
    .argument('<name>', 'index name')
    .argument('<value...>', 'one value per index column')
    .action(async (name: string, values: string[], _opts: object, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const docs = await sol.getFromIndex(name, ...values);
        ctx.out.result(docs.map(docJson), () => docs.map((d) => docLine(d, lineWidth(io))));
      });
    }),
  'soledad index query by-subject hello', "soledad index query by-tag-date inbox '2024*' --json");

  withExamples(index.command('keys')
    .description('every distinct key (tuple of column values) in an index')
    .argument('<name>', 'index name')
    .action(async (name: string, _opts: object, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const keys = await sol.getIndexKeys(name);
        ctx.out.result(keys, () => keys.map((k) => k.join('\t')));
      });
    }),
  'soledad index keys by-subject');

  withExamples(index.command('count')
    .description('how many documents match (same rules as query)')
    .argument('<name>', 'index name')
    .argument('<value...>', 'one value per index column')
    .action(async (name: string, values: string[], _opts: object, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const count = await sol.getCountFromIndex(name, ...values);
        ctx.out.result({ count }, () => String(count));
      });
    }),
  "soledad index count by-subject '*'");

  withExamples(index.command('range')
    .description('documents whose index values lie between --start and --end, inclusive (either may be left out)')
    .argument('<name>', 'index name')
    .option('--start <value...>', 'lower bound, one value per column')
    .option('--end <value...>', 'upper bound, one value per column')
    .action(async (name: string, opts: { start?: string[]; end?: string[] }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const bound = (v: string[] | undefined): string | string[] | null =>
        v === undefined ? null : v.length === 1 ? v[0]! : v;
      await withSoledad(ctx, async (sol) => {
        const docs = await sol.getRangeFromIndex(name, bound(opts.start), bound(opts.end));
        ctx.out.result(docs.map(docJson), () => docs.map((d) => docLine(d, lineWidth(io))));
      });
    }),
  'soledad index range by-subject --start a --end m', 'soledad index range by-date --start 2024-01-01');
}
