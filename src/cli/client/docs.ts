/**
 * `soledad doc …`: create, read, update, delete and list documents, and settle conflicts. Content goes in as JSON
 * (an argument, `-` for stdin, `@file`) and comes out as JSON.
 */
import type { Command } from 'commander';
import { Document } from '../../common/u1db/document.js';
import type { JsonObject } from '../../common/u1db/json.js';
import { contextOf, jsonArgument, withSoledad } from './context.js';
import { CliError, UsageError } from './errors.js';
import { withExamples } from './help.js';
import { docJson, docLine, lineWidth, type CliIo } from './output.js';

const JSON_ARG = 'a JSON object, - for stdin, or @file';

function notFound(id: string): CliError {
  return new CliError('DocumentDoesNotExistError', `no document ${id}`, "check the id with 'soledad doc list'");
}

/**
 * Register `soledad doc …`.
 *
 * @example
 * registerDocCommands(program, processIo());
 */
export function registerDocCommands(program: Command, io: CliIo): void {
  const doc = program.command('doc').description('documents: create, get, put, delete, list, conflicts, resolve');
  withExamples(doc, `soledad doc create '{"subject":"hello"}'`, 'soledad doc list');

  withExamples(doc.command('create')
    .description('create a document; prints its id (or the document with --json)')
    .argument('<json>', JSON_ARG)
    .option('--id <id>', 'use this id instead of a new D-… id')
    .action(async (json: string, opts: { id?: string }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const content = await jsonArgument(io, json);
      await withSoledad(ctx, async (sol) => {
        const d = await sol.createDoc(content, opts.id);
        ctx.out.result(docJson(d), () => d.docId);
      });
    }),
  `soledad doc create '{"subject":"hello","tags":["inbox"]}'`,
  'echo \'{"n":1}\' | soledad doc create - --id counter');

  withExamples(doc.command('get')
    .description('print a document\'s content as JSON (with --json: id, rev, content, hasConflicts)')
    .argument('<id>', 'document id')
    .option('--include-deleted', 'show a deleted document (content null) instead of failing')
    .action(async (id: string, opts: { includeDeleted?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const d = await sol.getDoc(id, { includeDeleted: opts.includeDeleted === true });
        if (d === null) throw notFound(id);
        ctx.out.result(docJson(d), () => JSON.stringify(d.content, null, 2));
        if (d.hasConflicts) ctx.out.note(`note: ${id} has conflicts; see 'soledad doc conflicts ${id}'`);
      });
    }),
  'soledad doc get D-3f2a…', 'soledad doc get D-3f2a… --json | jq -r .rev');

  withExamples(doc.command('put')
    .description('store new content for a document (creates it when the id is new); prints the new revision')
    .argument('<id>', 'document id')
    .argument('<json>', JSON_ARG)
    .option('--rev <rev>', 'the revision you edited: fail with RevisionConflictError if the document changed since')
    .action(async (id: string, json: string, opts: { rev?: string }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const content = await jsonArgument(io, json);
      await withSoledad(ctx, async (sol) => {
        const current = await sol.getDoc(id, { includeDeleted: true });
        let d: Document;
        if (current === null && opts.rev === undefined) {
          d = await sol.createDoc(content, id);
        } else {
          d = new Document(id, opts.rev ?? current?.rev ?? null, content);
          await sol.putDoc(d);
        }
        ctx.out.result(docJson(d), () => d.rev ?? '');
      });
    }),
  `soledad doc put note-1 '{"subject":"edited"}'`,
  `soledad doc get note-1 --json | jq '.content.subject="x" | .content' | soledad doc put note-1 - --rev "$REV"`);

  withExamples(doc.command('delete')
    .description('delete a document (a tombstone that syncs to other devices)')
    .argument('<id>', 'document id')
    .option('--rev <rev>', 'fail with RevisionConflictError if the document changed since this revision')
    .action(async (id: string, opts: { rev?: string }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const current = await sol.getDoc(id);
        if (current === null) throw notFound(id);
        if (opts.rev !== undefined) current.rev = opts.rev;
        const rev = await sol.deleteDoc(current);
        ctx.out.result({ id, rev, deleted: true }, () => `deleted ${id}`);
      });
    }),
  'soledad doc delete D-3f2a…');

  withExamples(doc.command('list')
    .description('list documents: id, revision, [conflicts], content (cut to one line)')
    .option('--include-deleted', 'include tombstones')
    .option('--conflicted', 'only documents with conflicts')
    .action(async (opts: { includeDeleted?: boolean; conflicted?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const { generation, docs } = await sol.getAllDocs({ includeDeleted: opts.includeDeleted === true });
        const shown = opts.conflicted === true ? docs.filter((d) => d.hasConflicts) : docs;
        shown.sort((a, b) => (a.docId < b.docId ? -1 : a.docId > b.docId ? 1 : 0));
        ctx.out.result({ generation, docs: shown.map(docJson) }, () => shown.map((d) => docLine(d, lineWidth(io))));
        ctx.out.note(`${shown.length} document${shown.length === 1 ? '' : 's'} at generation ${generation}`);
      });
    }),
  'soledad doc list', 'soledad doc list --conflicted --json');

  withExamples(doc.command('conflicts')
    .description('show the current version of a document and its conflicting versions')
    .argument('<id>', 'document id')
    .action(async (id: string, _opts: object, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const versions = await sol.getDocConflicts(id);
        ctx.out.result(versions.map(docJson), () => versions.length === 0
          ? `${id} has no conflicts`
          : versions.map((d, i) => `${i === 0 ? 'current ' : 'conflict'}  ${d.rev ?? '-'}  ${d.content === null ? '(deleted)' : JSON.stringify(d.content)}`));
      });
    }),
  'soledad doc conflicts note-1');

  withExamples(doc.command('resolve')
    .description('settle a conflicted document: give the merged content, or --take one version\'s content')
    .argument('<id>', 'document id')
    .argument('[json]', `merged content: ${JSON_ARG}`)
    .option('--take <rev>', 'keep the content of this revision (see \'soledad doc conflicts <id>\')')
    .action(async (id: string, json: string | undefined, opts: { take?: string }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      if ((json === undefined) === (opts.take === undefined)) {
        throw new UsageError('give either the merged content or --take <rev>', { hint: `see 'soledad doc resolve --help'` });
      }
      const merged = json === undefined ? undefined : await jsonArgument(io, json);
      await withSoledad(ctx, async (sol) => {
        const versions = await sol.getDocConflicts(id);
        if (versions.length === 0) throw new CliError('NoConflictsError', `${id} has no conflicts`, "nothing to resolve; use 'soledad doc put' to change it");
        let content: JsonObject | null;
        if (merged !== undefined) {
          content = merged;
        } else {
          const chosen = versions.find((v) => v.rev === opts.take);
          if (chosen === undefined) {
            throw new UsageError(`--take: ${id} has no version ${opts.take ?? ''}`, { hint: `choose one of ${versions.map((v) => v.rev).join(', ')}` });
          }
          content = chosen.content;
        }
        const current = versions[0]!;
        const d = new Document(id, current.rev, content);
        await sol.resolveDoc(d, versions.map((v) => v.rev).filter((r): r is string => r !== null));
        ctx.out.result(docJson(d), () => d.rev ?? '');
        if (d.hasConflicts) ctx.out.note(`note: ${id} still has conflicts (a newer one arrived); run this again`);
      });
    }),
  `soledad doc resolve note-1 '{"subject":"merged by hand"}'`, 'soledad doc resolve note-1 --take 4f…:2');
}
