/**
 * `soledad incoming list|process`: look into the incoming box without writing a consumer. `process` registers a
 * built-in consumer that keeps every message as it arrived: the payload as a blob (still encrypted by the trusted
 * application if it encrypted it, e.g. OpenPGP: this device does not have that key) and a document of type
 * `incoming` describing it, which syncs to the user's other devices like any document.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { HttpClient } from '../../client/http/client.js';
import type { IncomingBoxConsumer, IncomingItemInfo } from '../../client/incoming/incoming-box.js';
import type { Soledad } from '../../client/soledad.js';
import { EncScheme, PREAMBLE_B64_LENGTH, decodePreambleB64 } from '../../common/crypto/preamble.js';
import { BlobAlreadyExistsError, BlobNotFoundError, InvalidPreambleError, RangeNotSatisfiableError } from '../../common/errors.js';
import { INCOMING_DEFAULT_NAMESPACE, encryptionName } from '../../common/protocol/incoming.js';
import type { JsonObject } from '../../common/u1db/json.js';
import { contextOf, withSoledad } from './context.js';
import { CliError, describeError } from './errors.js';
import { withExamples } from './help.js';
import { formatBytes, type CliIo } from './output.js';
import type { Profile } from './profile.js';

/** The `type` of the documents the built-in consumer writes. */
export const INCOMING_DOC_TYPE = 'incoming';

/**
 * The document and blob id the built-in consumer uses for a message: derived from the message id, so a message
 * processed twice (a reservation lost mid-way) lands on the same document instead of adding a second one.
 *
 * @example
 * incomingIds('4f1c…'); // { docId: 'incoming-4f1c…', blobId: 'incoming-4f1c…' }
 */
export function incomingIds(itemId: string): { docId: string; blobId: string } {
  return { docId: `incoming-${itemId}`, blobId: `incoming-${itemId}` };
}

const PGP_ARMOR = Buffer.from('-----BEGIN PGP MESSAGE-----');
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * What a payload looks like, when that can be told from its bytes: ASCII-armored OpenPGP, or plain UTF-8 text.
 * Deliveries carry no content type of their own.
 *
 * @example
 * sniffContentType(Buffer.from('-----BEGIN PGP MESSAGE-----\n…')); // 'application/pgp-encrypted'
 * sniffContentType(randomBytes(64)); // undefined
 */
export function sniffContentType(payload: Buffer): string | undefined {
  if (payload.subarray(0, PGP_ARMOR.length).equals(PGP_ARMOR)) return 'application/pgp-encrypted';
  if (payload.length === 0) return undefined;
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return undefined;
  }
  // Control characters other than tab, newline, carriage return and form feed mean binary data.
  return /[\u0000-\u0008\u000b\u000e-\u001f\u007f]/.test(text) ? undefined : 'text/plain; charset=utf-8';
}

/** What the built-in consumer stored for one message. */
export interface StoredIncoming {
  /** The message id. */
  itemId: string;
  /** The `incoming` document. */
  docId: string;
  /** The blob holding the payload (default namespace). */
  blobId: string;
  /** Payload bytes. */
  size: number;
  /** False when the blob could not be uploaded yet; `soledad blob sync` finishes it. */
  uploaded: boolean;
}

/**
 * The built-in consumer: each message becomes a blob with its payload and a document pointing at it (through
 * `blob_id`, so `soledad attach get` reads it). `onStored` hears about every message stored.
 *
 * @example
 * sol.incoming.register(inspectionConsumer(sol, (s) => console.log(s.docId)), { namespace: 'MX' });
 * await sol.incoming.processOnce();
 */
export function inspectionConsumer(sol: Soledad, onStored: (stored: StoredIncoming) => void): IncomingBoxConsumer<{
  item: Buffer; encrypted: boolean; info: IncomingItemInfo;
}> {
  return {
    name: 'soledad-cli',
    version: 'inspect1',
    process: (item, _itemId, encrypted, info) => ({ item, encrypted, info }),
    async save({ item, encrypted, info }, itemId) {
      const { docId, blobId } = incomingIds(itemId);
      const existing = await sol.getDoc(docId);
      if ((await sol.blobs.localStatus(blobId))?.hasContent !== true) await sol.blobs.put(blobId, item, { upload: 'later' });
      let uploaded = true;
      try {
        await sol.blobs.upload(blobId);
      } catch (err) {
        // Already on the server: another device stored this message before losing its reservation.
        if (!(err instanceof BlobAlreadyExistsError)) uploaded = false;
      }
      const contentType = sniffContentType(item);
      const content: JsonObject = {
        type: INCOMING_DOC_TYPE,
        namespace: info.namespace,
        itemId,
        blob_id: blobId,
        size: item.length,
        receivedAt: info.deliveredAt.toISOString(),
        processedAt: new Date().toISOString(),
        encrypted,
        encryption: info.encryption ?? null,
        ...(contentType !== undefined ? { contentType } : {}),
      };
      if (existing === null) {
        await sol.createDoc(content, docId);
      } else {
        existing.content = content;
        await sol.putDoc(existing);
      }
      onStored({ itemId, docId, blobId, size: item.length, uploaded });
    },
  };
}

/** One message as `soledad incoming list` shows it. */
export interface IncomingListing {
  /** Message id. */
  id: string;
  /** `PENDING`, `PROCESSING` (a device holds it) or `FAILED`. */
  state: string;
  /** Payload bytes, when the header could be read. */
  size: number | null;
  /** When the server stored it (ISO 8601), when the header could be read. */
  receivedAt: string | null;
  /** The encryption the trusted app declared (`pgp`…), `null` for a blob a device of this user encrypted. */
  encryption: string | null;
}

/**
 * Read a message's header (the server's preamble, the first 736 bytes) with one ranged request: payload size,
 * delivery time and declared encryption, without downloading the payload.
 */
async function readHeader(http: HttpClient, uuid: string, namespace: string, id: string): Promise<Omit<IncomingListing, 'id' | 'state'>> {
  try {
    const res = await http.request({
      method: 'GET',
      path: `/blobs/${encodeURIComponent(uuid)}/${encodeURIComponent(id)}`,
      query: { namespace },
      // Soledad's ranges are end-exclusive.
      headers: { range: `bytes=0-${PREAMBLE_B64_LENGTH}` },
    });
    const { preamble } = decodePreambleB64((await res.text()).slice(0, PREAMBLE_B64_LENGTH));
    const external = preamble.scheme === EncScheme.external;
    return {
      size: preamble.contentSize,
      receivedAt: new Date(preamble.timestamp * 1000).toISOString(),
      encryption: external ? (encryptionName(preamble.method) ?? null) : null,
    };
  } catch (err) {
    // Shorter than a header, or not headed by a preamble: the listing still shows the id and its state.
    if (err instanceof RangeNotSatisfiableError || err instanceof InvalidPreambleError) {
      return { size: null, receivedAt: null, encryption: null };
    }
    throw err;
  }
}

function stateOf(flags: readonly string[]): string {
  for (const f of ['PROCESSING', 'FAILED', 'PROCESSED', 'PENDING']) if (flags.includes(f)) return f;
  return 'PENDING';
}

function httpFor(profile: Profile): HttpClient {
  return new HttpClient({
    serverUrl: profile.data.server,
    uuid: profile.data.uuid,
    token: profile.data.token,
    ...(profile.data.ca !== undefined ? { certFile: profile.data.ca } : {}),
  });
}

/** Commander's parser of a positive whole-number option value (a bad one is a usage error, exit code 2). */
function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d{1,9}$/.test(value) || n < 1) throw new InvalidArgumentError('expected a positive whole number.');
  return n;
}

interface IncomingOptions {
  namespace: string;
}

/** The line printed for a stored message. */
function messageLine(s: StoredIncoming): string {
  return `processed ${s.itemId} → doc ${s.docId}, blob ${s.blobId} (${formatBytes(s.size)}${s.uploaded ? '' : ', upload pending'})`;
}

/** The outcome of `soledad incoming process`, as `--json` prints it. */
export interface ProcessReport {
  /** The namespace processed. */
  namespace: string;
  /** Stored, synced and confirmed (gone from the box). */
  processed: StoredIncoming[];
  /** Marked `FAILED` on the server, with the error's name. */
  failed: Array<{ itemId: string; error: string }>;
  /** Left for later (held by another device, or a transient error). */
  skipped: string[];
}

/**
 * Register `soledad incoming …`.
 *
 * @example
 * registerIncomingCommands(program, processIo());
 */
export function registerIncomingCommands(program: Command, io: CliIo): void {
  const incoming = program.command('incoming')
    .description('the incoming box: messages a trusted application (a mail MX…) delivered for this user');
  withExamples(incoming, 'soledad incoming list', 'soledad incoming process');

  withExamples(incoming.command('list')
    .description('list the messages waiting in the box: id, state (PENDING, PROCESSING: a device holds it, ' +
      'FAILED), payload size, when it arrived and the declared encryption. Nothing is changed.')
    .option('--namespace <ns>', 'incoming namespace', INCOMING_DEFAULT_NAMESPACE)
    .option('--limit <n>', 'at most this many, oldest first', positiveInt, 50)
    .action(async (opts: IncomingOptions & { limit: number }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol, profile) => {
        // Counting pending messages also lets the server put lapsed reservations back to PENDING first.
        const pending = await sol.incoming.pendingCount(opts.namespace);
        const ids = await sol.incoming.list({ namespace: opts.namespace, order: 'asc', limit: opts.limit });
        const http = httpFor(profile);
        const messages: IncomingListing[] = [];
        try {
          for (const id of ids) {
            try {
              const flags = await sol.blobs.getFlags(id, { namespace: opts.namespace });
              messages.push({ id, state: stateOf(flags), ...(await readHeader(http, sol.uuid, opts.namespace, id)) });
            } catch (err) {
              // Confirmed by a device while we looked: it is no longer in the box.
              if (!(err instanceof BlobNotFoundError)) throw err;
            }
          }
        } finally {
          await http.close();
        }
        ctx.out.result({ namespace: opts.namespace, pending, messages }, () => [
          ...messages.map((m) => `${m.id}  ${m.state}  ${m.size === null ? '?' : formatBytes(m.size)}  ` +
            `${m.receivedAt ?? '?'}  ${m.encryption ?? '-'}`),
          `${messages.length} message${messages.length === 1 ? '' : 's'} in ${opts.namespace}, ${pending} pending`,
        ]);
      });
    }),
  'soledad incoming list', 'soledad incoming list --namespace CAL --json | jq ".messages[].id"');

  withExamples(incoming.command('process')
    .description('take the pending messages: store each payload as a blob (as delivered, e.g. still ' +
      'OpenPGP-encrypted) and a document {type: "incoming", blob_id, size, receivedAt, …} with id ' +
      'incoming-<message id>, sync the documents, then confirm the messages (the server deletes them). ' +
      'With --watch, keep doing it until Ctrl-C.')
    .option('--namespace <ns>', 'incoming namespace', INCOMING_DEFAULT_NAMESPACE)
    .option('--watch', 'keep processing new messages until interrupted (Ctrl-C)')
    .option('--interval <seconds>', 'with --watch: seconds between two looks at the box', positiveInt, 60)
    .action(async (opts: IncomingOptions & { watch?: boolean; interval: number }, cmd: Command) => {
      const ctx = contextOf(cmd, io);
      await withSoledad(ctx, async (sol) => {
        const report: ProcessReport = { namespace: opts.namespace, processed: [], failed: [], skipped: [] };
        const stored = new Map<string, StoredIncoming>();
        const watching = opts.watch === true;
        const emit = (value: object, line: string): void => {
          if (!watching) return;
          if (ctx.out.json) io.stdout.write(`${JSON.stringify(value)}\n`);
          else io.stdout.write(`${line}\n`);
        };
        sol.incoming.register(inspectionConsumer(sol, (s) => stored.set(s.itemId, s)), { namespace: opts.namespace });
        sol.incoming.on('processed', (e) => {
          const s = stored.get(e.itemId);
          if (s === undefined) return;
          report.processed.push(s);
          emit({ event: 'processed', ...s }, messageLine(s));
        });
        sol.incoming.on('failed', (e) => {
          const error = describeError(e.error).name;
          report.failed.push({ itemId: e.itemId, error });
          emit({ event: 'failed', itemId: e.itemId, error }, `failed ${e.itemId}: ${error}${e.permanent ? ' (permanently)' : ''}`);
        });
        const loopErrors: Error[] = [];
        sol.incoming.on('loop-error', (err) => {
          loopErrors.push(err);
          const r = describeError(err);
          if (watching) ctx.out.note(`${r.name}: ${r.message} — retrying in ${opts.interval} s`);
        });

        if (watching) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              process.off('SIGINT', done);
              process.off('SIGTERM', done);
              resolve();
            };
            process.on('SIGINT', done);
            process.on('SIGTERM', done);
            sol.incoming.start({ intervalMs: opts.interval * 1000 });
            ctx.out.note(`watching ${opts.namespace} every ${opts.interval} s; Ctrl-C stops`);
          });
          await sol.incoming.stop();
          ctx.out.note(`stopped: processed ${report.processed.length}, failed ${report.failed.length}`);
          return;
        }

        const summary = await sol.incoming.processOnce();
        report.skipped = summary.skipped;
        ctx.out.result(report, () => [
          ...report.processed.map((s) => messageLine(s)),
          ...report.failed.map((f) => `failed ${f.itemId}: ${f.error}`),
          `incoming ${opts.namespace}: processed ${report.processed.length}, failed ${report.failed.length}, ` +
            `skipped ${report.skipped.length}`,
        ]);
        if (report.processed.some((s) => !s.uploaded)) ctx.out.note("some payloads are not uploaded yet: run 'soledad blob sync'");
        // The box reports what it could not reach as events, not as a rejection; here it is the command's failure.
        if (loopErrors.length > 0) throw loopErrors[0]!;
        if (report.failed.length > 0) {
          throw new CliError('IncomingFailedError', `${report.failed.length} message${report.failed.length === 1 ? '' : 's'} ` +
            `could not be stored (first: ${report.failed[0]!.itemId}: ${report.failed[0]!.error})`,
          "they are marked FAILED on the server; see 'soledad incoming list'");
        }
      });
    }),
  'soledad incoming process', 'soledad incoming process --json | jq ".processed[].docId"',
  'soledad incoming process --watch --interval 30');
}
