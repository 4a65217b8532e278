/**
 * `soledad blob …` (encrypted binaries: put, get, list, flags, delete, sync) and `soledad attach …` (a file
 * attached to a document). Transfers show progress on stderr; contents stream, a file is never read whole.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Option, type Command } from 'commander';
import type { BlobManager, TransferProgress } from '../../client/blobs/blob-manager.js';
import type { LocalBlobEntry } from '../../client/blobs/local-store.js';
import { BLOB_FLAGS, isBlobFlag, type BlobFlag } from '../../common/protocol/blobs.js';
import { contextOf, withSoledad, type Ctx } from './context.js';
import { CliError, UsageError } from './errors.js';
import { withExamples } from './help.js';
import { formatBytes, type CliIo } from './output.js';
import { transferProgressView } from './progress.js';

interface NsOption {
  namespace?: string;
}

function nsOf(opts: NsOption): { namespace?: string } {
  return opts.namespace !== undefined ? { namespace: opts.namespace } : {};
}

async function fileSize(file: string): Promise<number> {
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new CliError('FileError', `${file} is not a regular file`, 'give a file');
    return s.size;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError('FileError', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'check the path', { cause: err });
  }
}

/** Run `fn` with the manager's transfer progress drawn on stderr. */
async function withTransferProgress<T>(ctx: Ctx, blobs: BlobManager, fn: () => Promise<T>): Promise<T> {
  const view = transferProgressView(ctx.out);
  const onProgress = (p: TransferProgress): void => view.update(p);
  blobs.on('progress', onProgress);
  try {
    return await fn();
  } finally {
    blobs.off('progress', onProgress);
    view.finish();
  }
}

/** Write a stream to a file (created 0600) or to stdout for `-`; resolves with the bytes written. */
async function writeOut(ctx: Ctx, data: Readable, target: string): Promise<number> {
  let bytes = 0;
  const counted = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      bytes += chunk.length;
      yield chunk;
    }
  };
  if (target === '-') {
    if (ctx.out.json) throw new UsageError('--json needs -o <file>: stdout carries the JSON result');
    await pipeline(data, counted, ctx.io.stdout, { end: false });
  } else {
    try {
      await pipeline(data, counted, createWriteStream(target, { mode: 0o600 }));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (typeof code === 'string' && code.startsWith('E')) {
        throw new CliError('FileError', `cannot write ${target} (${code})`, 'check the path and permissions', { cause: err });
      }
      throw err;
    }
  }
  return bytes;
}

function parseFlags(values: readonly string[]): BlobFlag[] {
  const flags = values.flatMap((v) => v.split(',')).map((v) => v.trim().toUpperCase()).filter((v) => v !== '');
  for (const f of flags) if (!isBlobFlag(f)) throw new UsageError(`--set: unknown flag "${f}"`, { hint: `use ${BLOB_FLAGS.join(', ')}` });
  return flags as BlobFlag[];
}

const NAMESPACE_OPTION = ['--namespace <ns>', 'blob namespace (default "default")'] as const;

/**
 * Register `soledad blob …` and `soledad attach …`.
 *
 * @example
 * registerBlobCommands(program, processIo());
 */
export function registerBlobCommands(program: Command, io: CliIo): void {
  const blob = program.command('blob').description('encrypted blobs: put, get, list, flags, delete, sync');
  withExamples(blob, 'soledad blob put photo.jpg --id photo-1', 'soledad blob get photo-1 -o photo.jpg');

  withExamples(blob.command('put')
    .description('store a file as a blob (encrypted here) and upload it; prints the blob id')
    .argument('<file>', 'the file to store')
    .option('--id <id>', 'blob id (letters, digits, - and _; default a new random id)')
    .option(...NAMESPACE_OPTION)
    .option('--local-only', 'keep it on this device only; never uploaded')
    .option('--no-upload', "store it locally now and upload with the next 'soledad blob sync'")
    .action(async (file: string, opts: NsOption & { id?: string; localOnly?: boolean; upload: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const size = await fileSize(file);
      const id = opts.id ?? randomUUID();
      await withSoledad(ctx, async (sol) => {
        await withTransferProgress(ctx, sol.blobs, () => sol.blobs.put(id, createReadStream(file), {
          ...nsOf(opts),
          ...(opts.localOnly === true ? { localOnly: true } : {}),
          upload: opts.upload ? 'await' : 'later',
        }));
        const status = (await sol.blobs.localStatus(id, nsOf(opts)))?.status;
        ctx.out.result({ id, namespace: opts.namespace ?? 'default', size, status }, () => id);
        ctx.out.note(`stored ${formatBytes(size)} as ${id} (${status ?? 'unknown'})`);
      });
    }),
  'soledad blob put report.pdf', 'soledad blob put photo.jpg --id photo-1 --namespace photos');

  withExamples(blob.command('get')
    .description('write a blob\'s content to a file (-o) or stdout, downloading and verifying it first if needed')
    .argument('<id>', 'blob id')
    .option('-o, --output <file>', 'write here instead of stdout', '-')
    .option(...NAMESPACE_OPTION)
    .action(async (id: string, opts: NsOption & { output: string }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      if (ctx.out.json && opts.output === '-') throw new UsageError('--json needs -o <file>: stdout carries the JSON result');
      await withSoledad(ctx, async (sol) => {
        const data = await withTransferProgress(ctx, sol.blobs, () => sol.blobs.get(id, nsOf(opts)));
        const bytes = await writeOut(ctx, data, opts.output);
        if (opts.output !== '-') ctx.out.result({ id, file: opts.output, size: bytes }, () => `wrote ${formatBytes(bytes)} to ${opts.output}`);
      });
    }),
  'soledad blob get photo-1 -o photo.jpg', 'soledad blob get report-7 | less');

  withExamples(blob.command('list')
    .description('list blobs on the server (or on this device with --local)')
    .option(...NAMESPACE_OPTION)
    .option('--local', 'list this device\'s blobs with their sync status instead')
    .addOption(new Option('--order <order>', 'by date').choices(['asc', 'desc']))
    .addOption(new Option('--flag <flag>', 'only blobs carrying this flag').choices([...BLOB_FLAGS]))
    .option('--deleted', 'list deleted blobs')
    .option('--count', 'print only how many')
    .action(async (opts: NsOption & { local?: boolean; order?: 'asc' | 'desc'; flag?: BlobFlag; deleted?: boolean; count?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        if (opts.local === true) {
          const entries: LocalBlobEntry[] = [];
          for (const id of await sol.blobs.localList(nsOf(opts))) {
            const e = await sol.blobs.localStatus(id, nsOf(opts));
            if (e !== undefined) entries.push(e);
          }
          const rows = entries.map((e) => ({ id: e.blobId, status: e.status, size: e.size }));
          if (opts.count === true) ctx.out.result({ count: rows.length }, () => String(rows.length));
          else ctx.out.result(rows, () => rows.map((r) => `${r.id}  ${r.status}  ${r.size === null ? '-' : formatBytes(r.size)}`));
          return;
        }
        const query = {
          ...nsOf(opts),
          ...(opts.order !== undefined ? { orderBy: opts.order } : {}),
          ...(opts.flag !== undefined ? { filterFlag: opts.flag } : {}),
          ...(opts.deleted === true ? { deleted: true } : {}),
        };
        if (opts.count === true) {
          const { count } = await sol.blobs.remoteList({ ...query, onlyCount: true });
          ctx.out.result({ count }, () => String(count));
        } else {
          const ids = await sol.blobs.remoteList(query);
          ctx.out.result(ids, () => ids);
        }
      });
    }),
  'soledad blob list', 'soledad blob list --namespace MX --flag PENDING --order asc', 'soledad blob list --local');

  withExamples(blob.command('flags')
    .description(`show a blob's flags on the server, or replace them with --set (${BLOB_FLAGS.join(', ')})`)
    .argument('<id>', 'blob id')
    .option('--set <flags...>', 'the new flags (comma or space separated; --set "" clears them)')
    .option(...NAMESPACE_OPTION)
    .action(async (id: string, opts: NsOption & { set?: string[] }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const next = opts.set === undefined ? undefined : parseFlags(opts.set);
      await withSoledad(ctx, async (sol) => {
        if (next !== undefined) await sol.blobs.setFlags(id, next, nsOf(opts));
        const flags = next ?? (await sol.blobs.getFlags(id, nsOf(opts)));
        ctx.out.result({ id, flags }, () => (flags.length === 0 ? '(no flags)' : flags.join(' ')));
      });
    }),
  'soledad blob flags msg-1', 'soledad blob flags msg-1 --namespace MX --set PROCESSED');

  withExamples(blob.command('delete')
    .description('delete a blob here and on the server (finished by the next sync if the server is unreachable)')
    .argument('<id>', 'blob id')
    .option(...NAMESPACE_OPTION)
    .action(async (id: string, opts: NsOption, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        await sol.blobs.delete(id, nsOf(opts));
        ctx.out.result({ id, deleted: true }, () => `deleted ${id}`);
      });
    }),
  'soledad blob delete photo-1');

  withExamples(blob.command('sync')
    .description('synchronize blobs of a namespace: finish deletions, download what is missing here, upload what ' +
      'is missing there')
    .option(...NAMESPACE_OPTION)
    .option('--stream', 'many blobs per request (fewer round trips for many small blobs)')
    .action(async (opts: NsOption & { stream?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const s = await withTransferProgress(ctx, sol.blobs, () => sol.blobs.sync({ ...nsOf(opts), ...(opts.stream === true ? { transport: 'stream' as const } : {}) }));
        const failed = [...s.downloaded.failed, ...s.uploaded.failed];
        const summary = {
          downloaded: s.downloaded.succeeded,
          uploaded: s.uploaded.succeeded,
          deletedLocally: s.deletedLocally,
          failed: failed.map((f) => ({ direction: f.direction, id: f.blobId, error: f.error.name })),
        };
        ctx.out.result(summary, () => `blobs synced: downloaded ${s.downloaded.succeeded.length}, uploaded ` +
          `${s.uploaded.succeeded.length}, removed ${s.deletedLocally.length}, failed ${failed.length}`);
        if (failed.length > 0) {
          const first = failed[0]!;
          throw new CliError('BlobSyncError', `${failed.length} transfer${failed.length === 1 ? '' : 's'} failed (first: ` +
            `${first.direction} ${first.blobId}: ${first.error.name})`, "they stay pending; run 'soledad blob sync' again");
        }
      });
    }),
  'soledad blob sync', 'soledad blob sync --namespace photos --stream');

  const attach = program.command('attach').description('a file attached to a document (stored as a blob)');
  withExamples(attach, 'soledad attach put note-1 scan.pdf', 'soledad attach get note-1 scan-copy.pdf');

  withExamples(attach.command('put')
    .description('attach a file to a document: store it as a blob, point the document at it, upload it')
    .argument('<doc-id>', 'document id')
    .argument('<file>', 'the file to attach')
    .option('--replace', 'replace an existing attachment (blobs are immutable: the old one is deleted)')
    .action(async (docId: string, file: string, opts: { replace?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      const size = await fileSize(file);
      await withSoledad(ctx, async (sol) => {
        const doc = await sol.getDoc(docId);
        if (doc === null) throw new CliError('DocumentDoesNotExistError', `no document ${docId}`, "check the id with 'soledad doc list'");
        if (typeof doc.content?.['blob_id'] === 'string') {
          if (opts.replace !== true) throw new UsageError(`${docId} already has an attachment`, { hint: 'add --replace' });
          await doc.deleteAttachment();
        }
        await withTransferProgress(ctx, sol.blobs, async () => {
          await doc.putAttachment(createReadStream(file));
          await sol.putDoc(doc);
          await doc.uploadAttachment();
        });
        const blobId = doc.content?.['blob_id'];
        ctx.out.result({ docId, blobId, size, rev: doc.rev }, () => String(blobId));
        ctx.out.note(`attached ${formatBytes(size)} to ${docId}; 'soledad sync' shares the document`);
      });
    }),
  'soledad attach put note-1 scan.pdf');

  withExamples(attach.command('get')
    .description('write a document\'s attachment to a file (- for stdout), downloading it first if needed')
    .argument('<doc-id>', 'document id')
    .argument('<file>', 'where to write it, or -')
    .action(async (docId: string, file: string, _opts: object, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const doc = await sol.getDoc(docId);
        if (doc === null) throw new CliError('DocumentDoesNotExistError', `no document ${docId}`, "check the id with 'soledad doc list'");
        const data = await withTransferProgress(ctx, sol.blobs, () => doc.getAttachment());
        if (data === null) throw new CliError('NoAttachmentError', `${docId} has no attachment`, "add one with 'soledad attach put'");
        const bytes = await writeOut(ctx, data, file);
        if (file !== '-') ctx.out.result({ docId, file, size: bytes }, () => `wrote ${formatBytes(bytes)} to ${file}`);
      });
    }),
  'soledad attach get note-1 scan.pdf', 'soledad attach get note-1 - | file -');
}
