/**
 * Crash-safe reading and writing of the secrets file (and its `.recovery` sibling): a reader sees either the
 * old file or the new one, never a torn write, and the file is never readable by other users.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SecretsFileCorruptedError } from '../../common/errors.js';

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/**
 * Read and parse a JSON secrets file. A missing file gives `null`; unparsable text throws
 * {@link SecretsFileCorruptedError}.
 *
 * @example
 * const doc = await readSecretsFile('/home/me/.config/soledad/soledad.json'); // object or null
 */
export async function readSecretsFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null;
    throw err;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new SecretsFileCorruptedError('The storage secrets file is not valid JSON', { cause: err });
  }
}

/**
 * Atomically replace `path` with `text`: write a mode-0600 temporary file in the same directory, fsync it,
 * rename it over the target, fsync the directory. Creates the directory (mode 0700) if needed.
 *
 * @example
 * await writeSecretsFile(path, serializeSecretsFile(doc));
 */
export async function writeSecretsFile(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', FILE_MODE);
  try {
    try {
      // The umask can only remove bits, but be explicit: the file holds wrapped key material.
      await fh.chmod(FILE_MODE);
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  let dh;
  try {
    dh = await open(dir, 'r');
  } catch {
    return; // Some platforms cannot open directories; the rename itself is still atomic.
  }
  try {
    await dh.sync();
  } catch (err) {
    if (!isErrno(err, 'EINVAL') && !isErrno(err, 'EISDIR') && !isErrno(err, 'EPERM')) throw err;
  } finally {
    await dh.close();
  }
}

/** Remove a secrets-related file if it exists. */
export async function removeSecretsFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}

/** Ensure an existing file is private (mode 0600); used on files written by other programs. */
export async function restrictSecretsFile(path: string): Promise<void> {
  await chmod(path, FILE_MODE);
}
