/**
 * The filesystem blob store, with the original's layout (fact sheet §5b):
 * `<root>/<user>/<namespace>/<id[0]>/<id[0:3]>/<id[0:6]>/<id>`, beside it `<id>.flags` (JSON list) and, once
 * deleted, `<id>.deleted`; and, once the incoming box wrote one, the metadata record `<id>.meta` (JSON object).
 *
 * Crash safety: content is written to a hidden temporary file in the same directory, synced, and then hard-linked
 * to its final name (`link` fails if the name exists, so two racing writers cannot both win and nothing is ever
 * overwritten); a crash leaves at most a hidden temporary file, which the next measurement of the user removes.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import {
  BadRequestError,
  BlobAlreadyExistsError,
  BlobNotFoundError,
  InvalidFlagsError,
} from '../../../common/errors.js';
import { formatFlags, isBlobFlag, isValidBlobName } from '../../../common/protocol/blobs.js';
import type { BlobFlag } from '../../../common/protocol/blobs.js';
import type {
  BlobCountOptions,
  BlobHandle,
  BlobListOptions,
  BlobPutOptions,
  BlobPutResult,
  BlobRef,
  BlobStat,
  BlobState,
  BlobStore,
  BlobStoreStats,
  BlobUsage,
  ByteRange,
  QuotaReservation,
} from '../blob-types.js';
import { KeyedMutex, Semaphore } from '../../../common/concurrency.js';
import { UsageTracker } from './usage.js';
import type { JsonObject } from '../../../common/u1db/json.js';

/** The original's default quota: 200 × 1024 KiB. */
export const DEFAULT_BLOB_QUOTA_BYTES = 200 * 1024 * 1024;
/** The original's default number of concurrent writes (`concurrent_blob_writes`). */
export const DEFAULT_CONCURRENT_BLOB_WRITES = 50;

const TAG_LENGTH = 16;
const FLAGS_SUFFIX = '.flags';
const DELETED_SUFFIX = '.deleted';
const META_SUFFIX = '.meta';
const TMP_SUFFIX = '.tmp';

/**
 * Options of {@link FsBlobStore}.
 *
 * @example
 * new FsBlobStore({ root: '/var/lib/soledad/blobs', quotaBytes: 1 << 30, concurrentWrites: 50 });
 */
export interface FsBlobStoreOptions {
  /** `blobs_path`: the directory holding one folder per user. Created if missing. */
  root: string;
  /** Per-user quota in bytes, or a function of the user (default {@link DEFAULT_BLOB_QUOTA_BYTES}). */
  quotaBytes?: number | ((user: string) => number);
  /** Most blob writes in progress at once; further writes wait (default {@link DEFAULT_CONCURRENT_BLOB_WRITES}). */
  concurrentWrites?: number;
  /** Sync each blob to disk before it becomes visible (default true). */
  durable?: boolean;
  /**
   * Bytes a user stores outside blobs under the same quota (documents). Asked at each reservation; default none.
   */
  otherUsageBytes?: (user: string) => Promise<number>;
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as { code?: string }).code ?? '');
}

/** Remove a file if it is there (one syscall, unlike `rm({ force })`, which stats first). */
async function unlinkIfExists(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!isErrno(err, 'ENOENT', 'ENOTDIR')) throw err;
  }
}

function tmpName(base: string): string {
  return `.${base}.${randomBytes(6).toString('hex')}${TMP_SUFFIX}`;
}

/** Hidden temporary files start with a dot, which no legal name can. */
function isTmp(name: string): boolean {
  return name.startsWith('.') && name.endsWith(TMP_SUFFIX);
}

/**
 * A {@link BlobStore} on the local filesystem.
 *
 * @example
 * const store = new FsBlobStore({ root: dir });
 * await store.put({ user: 'u1', namespace: 'default', blobId: 'b1' }, [Buffer.from('hello')], { size: 5 });
 */
export class FsBlobStore implements BlobStore {
  /** Absolute root directory. */
  readonly root: string;
  private readonly writes: Semaphore;
  private readonly locks = new KeyedMutex();
  private readonly usageTracker: UsageTracker;
  private readonly durable: boolean;
  private readonly limitFor: (user: string) => number;

  constructor(options: FsBlobStoreOptions) {
    this.root = resolve(options.root);
    this.writes = new Semaphore(options.concurrentWrites ?? DEFAULT_CONCURRENT_BLOB_WRITES);
    this.durable = options.durable ?? true;
    const quota = options.quotaBytes ?? DEFAULT_BLOB_QUOTA_BYTES;
    this.limitFor = typeof quota === 'function' ? quota : () => quota;
    this.usageTracker = new UsageTracker((user) => this.measure(user), this.limitFor, options.otherUsageBytes);
  }

  // ---- paths ----

  private userDir(user: string): string {
    if (!isValidBlobName(user)) throw new BadRequestError('Invalid user id');
    const dir = join(this.root, user);
    // Defence in depth: with validated names this cannot fail, but no path may leave the user's folder.
    if (!dir.startsWith(this.root + sep)) throw new BadRequestError('Invalid user id');
    return dir;
  }

  private namespaceDir(user: string, namespace: string): string {
    if (!isValidBlobName(namespace)) throw new BadRequestError('Invalid namespace');
    return join(this.userDir(user), namespace);
  }

  private blobPath(ref: BlobRef): { dir: string; path: string } {
    if (!isValidBlobName(ref.blobId)) throw new BadRequestError('Invalid blob id');
    const id = ref.blobId;
    const dir = join(this.namespaceDir(ref.user, ref.namespace), id.slice(0, 1), id.slice(0, 3), id.slice(0, 6));
    const path = join(dir, id);
    if (!path.startsWith(this.userDir(ref.user) + sep)) throw new BadRequestError('Invalid blob path');
    return { dir, path };
  }

  private lockKey(ref: BlobRef): string {
    return `${ref.user}/${ref.namespace}/${ref.blobId}`;
  }

  // ---- writes ----

  /** {@inheritDoc BlobStore.put} */
  async put(ref: BlobRef, body: AsyncIterable<Uint8Array>, options: BlobPutOptions = {}): Promise<BlobPutResult> {
    const { dir, path } = this.blobPath(ref);
    const declared = options.size;
    if (declared !== undefined && (!Number.isSafeInteger(declared) || declared < 0)) {
      throw new BadRequestError('Invalid blob size');
    }
    for (const f of options.flags ?? []) if (!isBlobFlag(f)) throw new InvalidFlagsError(`Invalid flag: ${String(f)}`);
    const release = await this.writes.acquire();
    let reservation: QuotaReservation | undefined;
    let tmp: string | undefined;
    let fh: FileHandle | undefined;
    try {
      // Cheap early answer before any byte is read; the link below is what really decides.
      if (await exists(path)) throw new BlobAlreadyExistsError(`Blob already exists: ${ref.blobId}`);
      reservation = await this.usageTracker.reserve(ref.user, declared ?? 0, options.quotaTolerance ?? 0);
      await mkdir(dir, { recursive: true });
      tmp = join(dir, tmpName(ref.blobId));
      fh = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
      let written = 0;
      for await (const chunk of body) {
        options.signal?.throwIfAborted();
        if (chunk.length === 0) continue;
        written += chunk.length;
        if (declared !== undefined) {
          if (written > declared) throw new BadRequestError('Blob body is longer than its declared size');
        } else {
          reservation.grow(chunk.length);
        }
        let off = 0;
        while (off < chunk.length) {
          const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
          off += bytesWritten;
        }
      }
      options.signal?.throwIfAborted();
      if (declared !== undefined && written !== declared) {
        throw new BadRequestError('Blob body is shorter than its declared size');
      }
      if (this.durable) await fh.datasync();
      await fh.close();
      fh = undefined;
      const tmpPath = tmp;
      await this.locks.run(this.lockKey(ref), async () => {
        if (await exists(path)) throw new BlobAlreadyExistsError(`Blob already exists: ${ref.blobId}`);
        // The blob's side files are set BEFORE it appears under its name: a crash after the link must not leave a
        // blob without its flags (an incoming message nobody would ever see as PENDING, while a redelivery gets
        // 409). A crash before the link leaves at most a stray side file, which the next put of this id replaces.
        // A record left by a delete that crashed midway must not describe the new blob either.
        await unlinkIfExists(path + META_SUFFIX);
        if (options.flags !== undefined && options.flags.length > 0) await this.writeFlagsFile(path, options.flags);
        else await unlinkIfExists(path + FLAGS_SUFFIX);
        try {
          await link(tmpPath, path);
        } catch (err) {
          if (isErrno(err, 'EEXIST')) throw new BlobAlreadyExistsError(`Blob already exists: ${ref.blobId}`);
          if (!isErrno(err, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV')) throw err;
          // A filesystem without hard links: the lock and the existence check stand in for link's atomicity.
          if (await exists(path)) throw new BlobAlreadyExistsError(`Blob already exists: ${ref.blobId}`);
          await rename(tmpPath, path);
        }
        await unlinkIfExists(path + DELETED_SUFFIX);
      });
      reservation.commit(written);
      reservation = undefined;
      return { size: written };
    } finally {
      if (fh !== undefined) await fh.close().catch(() => undefined);
      if (tmp !== undefined) await unlinkIfExists(tmp).catch(() => undefined);
      reservation?.release();
      release();
    }
  }

  private async writeFlagsFile(blobPath: string, flags: readonly string[]): Promise<void> {
    await this.replaceFile(blobPath + FLAGS_SUFFIX, formatFlags(flags));
  }

  /** Replace a small file atomically (temporary file, then rename). */
  private async replaceFile(target: string, text: string): Promise<void> {
    const dir = target.slice(0, target.lastIndexOf(sep));
    const tmp = join(dir, tmpName(target.slice(dir.length + 1)));
    try {
      await writeFile(tmp, text, { mode: 0o600 });
      await rename(tmp, target);
    } catch (err) {
      await unlinkIfExists(tmp).catch(() => undefined);
      throw err;
    }
  }

  private async readFlagsFile(blobPath: string): Promise<BlobFlag[]> {
    let text: string;
    try {
      text = await readFile(blobPath + FLAGS_SUFFIX, 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    try {
      const value: unknown = JSON.parse(text);
      return Array.isArray(value) ? value.filter(isBlobFlag) : [];
    } catch {
      return [];
    }
  }

  private async readMetaFile(blobPath: string): Promise<JsonObject | null> {
    let text: string;
    try {
      text = await readFile(blobPath + META_SUFFIX, 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw err;
    }
    try {
      const value: unknown = JSON.parse(text);
      return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonObject) : null;
    } catch {
      return null;
    }
  }

  /** {@inheritDoc BlobStore.setFlags} */
  async setFlags(ref: BlobRef, flags: readonly string[]): Promise<void> {
    const { path } = this.blobPath(ref);
    await this.usageTracker.usage(ref.user);
    await this.locks.run(this.lockKey(ref), async () => {
      if (!(await exists(path))) throw new BlobNotFoundError(`Blob doesn't exist: ${ref.blobId}`);
      for (const f of flags) if (!isBlobFlag(f)) throw new InvalidFlagsError(`Invalid flag: ${String(f)}`);
      await this.writeFlagsFile(path, flags);
    });
  }

  /** {@inheritDoc BlobStore.updateFlags} */
  async updateFlags(ref: BlobRef, update: (current: BlobFlag[]) => readonly BlobFlag[] | null): Promise<BlobFlag[]> {
    const { path } = this.blobPath(ref);
    await this.usageTracker.usage(ref.user);
    return this.locks.run(this.lockKey(ref), async () => {
      if (!(await exists(path))) throw new BlobNotFoundError(`Blob doesn't exist: ${ref.blobId}`);
      const current = await this.readFlagsFile(path);
      const next = update([...current]);
      if (next === null) return current;
      for (const f of next) if (!isBlobFlag(f)) throw new InvalidFlagsError(`Invalid flag: ${String(f)}`);
      await this.writeFlagsFile(path, next);
      return [...next];
    });
  }

  /** {@inheritDoc BlobStore.updateState} */
  async updateState(ref: BlobRef, update: (current: BlobState) => BlobState | null): Promise<BlobState> {
    const { path } = this.blobPath(ref);
    await this.usageTracker.usage(ref.user);
    return this.locks.run(this.lockKey(ref), async () => {
      if (!(await exists(path))) throw new BlobNotFoundError(`Blob doesn't exist: ${ref.blobId}`);
      const current: BlobState = { flags: await this.readFlagsFile(path), meta: await this.readMetaFile(path) };
      const next = update({ flags: [...current.flags], meta: current.meta === null ? null : structuredClone(current.meta) });
      if (next === null) return current;
      for (const f of next.flags) if (!isBlobFlag(f)) throw new InvalidFlagsError(`Invalid flag: ${String(f)}`);
      // The record first: a crash between the two writes leaves the flags as they were, which is what the incoming
      // box reads first (a record that says more than the flags is ignored).
      if (JSON.stringify(next.meta) !== JSON.stringify(current.meta)) {
        if (next.meta === null) await unlinkIfExists(path + META_SUFFIX);
        else await this.replaceFile(path + META_SUFFIX, JSON.stringify(next.meta));
      }
      if (formatFlags(next.flags) !== formatFlags(current.flags)) await this.writeFlagsFile(path, next.flags);
      return { flags: [...next.flags], meta: next.meta === null ? null : structuredClone(next.meta) };
    });
  }

  /** {@inheritDoc BlobStore.delete} */
  async delete(ref: BlobRef): Promise<void> {
    const { path } = this.blobPath(ref);
    await this.usageTracker.usage(ref.user);
    await this.locks.run(this.lockKey(ref), async () => {
      let size: number;
      try {
        const st = await stat(path);
        if (!st.isFile()) throw new BlobNotFoundError(`Blob doesn't exist: ${ref.blobId}`);
        size = st.size;
      } catch (err) {
        if (isErrno(err, 'ENOENT', 'ENOTDIR')) throw new BlobNotFoundError(`Blob doesn't exist: ${ref.blobId}`);
        throw err;
      }
      // Marker first: a crash in between leaves a blob listed as deleted, never a blob silently gone.
      await writeFile(path + DELETED_SUFFIX, '', { mode: 0o600 });
      await unlink(path);
      await unlinkIfExists(path + FLAGS_SUFFIX);
      await unlinkIfExists(path + META_SUFFIX);
      this.usageTracker.subtract(ref.user, size);
    });
  }

  // ---- reads ----

  /** {@inheritDoc BlobStore.open} */
  async open(ref: BlobRef): Promise<BlobHandle> {
    const { path } = this.blobPath(ref);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw new BlobNotFoundError(`Blob doesn't exist: ${ref.blobId}`);
      throw err;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new BlobNotFoundError(`Blob doesn't exist: ${ref.blobId}`);
      return new FsBlobHandle(fh, st.size, st.mtime);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  /** {@inheritDoc BlobStore.stat} */
  async stat(ref: BlobRef): Promise<BlobStat | null> {
    const { path } = this.blobPath(ref);
    try {
      const st = await stat(path);
      return st.isFile() ? { size: st.size, createdAt: st.mtime } : null;
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return null;
      throw err;
    }
  }

  /** {@inheritDoc BlobStore.getFlags} */
  async getFlags(ref: BlobRef): Promise<BlobFlag[]> {
    const { path } = this.blobPath(ref);
    if (!(await exists(path))) throw new BlobNotFoundError(`Blob doesn't exist: ${ref.blobId}`);
    return this.readFlagsFile(path);
  }

  /** Every blob file (or deletion marker) under a namespace: `[id, absolute path]`. */
  private async scan(user: string, namespace: string, deleted: boolean): Promise<Array<[string, string]>> {
    const base = this.namespaceDir(user, namespace);
    let entries;
    try {
      entries = await readdir(base, { recursive: true, withFileTypes: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return [];
      throw err;
    }
    const out: Array<[string, string]> = [];
    for (const e of entries) {
      if (!e.isFile()) continue;
      const name = e.name;
      if (deleted) {
        if (!name.endsWith(DELETED_SUFFIX)) continue;
        const id = name.slice(0, -DELETED_SUFFIX.length);
        if (isValidBlobName(id)) out.push([id, join(e.parentPath, name)]);
      } else if (isValidBlobName(name)) {
        out.push([name, join(e.parentPath, name)]);
      }
    }
    return out;
  }

  /** {@inheritDoc BlobStore.list} */
  async list(user: string, options: BlobListOptions): Promise<string[]> {
    let items = await this.scan(user, options.namespace, options.deleted === true);
    const wanted = [...(options.filterFlag === undefined ? [] : [options.filterFlag]), ...(options.anyFlag ?? [])];
    const selecting = options.filterFlag !== undefined || options.anyFlag !== undefined;
    const excluded = options.excludeFlags ?? [];
    if (selecting || excluded.length > 0) {
      // A deletion marker has no flags file (as in the original): filtering deleted ids yields nothing.
      const keep = await Promise.all(items.map(async ([, p]) => {
        const flags: readonly string[] = await this.readFlagsFile(p);
        if (selecting && !flags.some((f) => wanted.includes(f))) return false;
        return !flags.some((f) => excluded.includes(f));
      }));
      items = items.filter((_, i) => keep[i]);
    }
    let ids: string[];
    if (options.order !== undefined || options.maxSize !== undefined) {
      const maxSize = options.maxSize;
      const dated = await Promise.all(items.map(async ([id, p]) => {
        try {
          const st = await stat(p, { bigint: true });
          if (maxSize !== undefined && st.size > BigInt(maxSize)) return null;
          return { id, t: st.mtimeNs };
        } catch {
          return null; // deleted meanwhile
        }
      }));
      const present = dated.filter((d): d is { id: string; t: bigint } => d !== null);
      if (options.order !== undefined) {
        const dir = options.order === 'asc' ? 1 : -1;
        present.sort((a, b) => (a.t < b.t ? -dir : a.t > b.t ? dir : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      } else {
        present.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      }
      ids = present.map((d) => d.id);
    } else {
      ids = items.map(([id]) => id).sort();
    }
    const offset = options.offset ?? 0;
    return options.limit !== undefined ? ids.slice(offset, offset + options.limit) : ids.slice(offset);
  }

  /** {@inheritDoc BlobStore.count} */
  async count(user: string, options: BlobCountOptions): Promise<number> {
    if (options.deleted === true || options.filterFlag !== undefined) {
      const qualified: BlobListOptions = { namespace: options.namespace };
      if (options.deleted !== undefined) qualified.deleted = options.deleted;
      if (options.filterFlag !== undefined) qualified.filterFlag = options.filterFlag;
      return (await this.list(user, qualified)).length;
    }
    // The original counts every non-flags file: live blobs and deletion markers.
    const live = await this.scan(user, options.namespace, false);
    const dead = await this.scan(user, options.namespace, true);
    return live.length + dead.length;
  }

  // ---- quota ----

  /** Walk a user's folder once: sum blob sizes and remove temporary files a crash left behind. */
  private async measure(user: string): Promise<number> {
    const dir = this.userDir(user);
    let entries;
    try {
      entries = await readdir(dir, { recursive: true, withFileTypes: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return 0;
      throw err;
    }
    let total = 0;
    for (const e of entries) {
      if (!e.isFile()) continue;
      const p = join(e.parentPath, e.name);
      if (isTmp(e.name)) {
        await unlinkIfExists(p).catch(() => undefined);
      } else if (isValidBlobName(e.name)) {
        try {
          total += (await stat(p)).size;
        } catch {
          // vanished while walking
        }
      }
    }
    return total;
  }

  /** {@inheritDoc BlobStore.usage} */
  async usage(user: string): Promise<BlobUsage> {
    this.userDir(user);
    return this.usageTracker.usage(user);
  }

  /** {@inheritDoc BlobStore.reserve} */
  async reserve(user: string, bytes: number, tolerance = 0): Promise<QuotaReservation> {
    this.userDir(user);
    return this.usageTracker.reserve(user, bytes, tolerance);
  }

  /** {@inheritDoc BlobStore.stats} */
  stats(): BlobStoreStats {
    return { activeWrites: this.writes.activeCount, queuedWrites: this.writes.queuedCount };
  }

  /** {@inheritDoc BlobStore.close} */
  async close(): Promise<void> {
    await this.writes.idle();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return false;
    throw err;
  }
}

class FsBlobHandle implements BlobHandle {
  private owned = true;

  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    readonly createdAt: Date,
  ) {}

  async tag(): Promise<Buffer> {
    const n = Math.min(TAG_LENGTH, this.size);
    const buf = Buffer.alloc(n);
    if (n > 0) await this.fh.read(buf, 0, n, this.size - n);
    return buf;
  }

  read(range?: ByteRange): Readable {
    if (!this.owned) throw new Error('blob handle already consumed');
    this.owned = false;
    const start = range?.start ?? 0;
    const end = range?.end ?? this.size;
    if (end <= start) {
      void this.fh.close().catch(() => undefined);
      return Readable.from([]);
    }
    return this.fh.createReadStream({ start, end: end - 1, autoClose: true, highWaterMark: 256 * 1024 });
  }

  async close(): Promise<void> {
    if (!this.owned) return;
    this.owned = false;
    await this.fh.close().catch(() => undefined);
  }
}
