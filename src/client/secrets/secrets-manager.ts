/**
 * The storage-secrets life cycle (fact sheet §4c): bootstrap from the local file, else from the recovery
 * document in the shared db, else generate; passphrase change; recovery codes. Secrets live only in memory
 * and are zeroed on {@link SecretsManager.close}.
 */
import { DatabaseClosedError, RevisionConflictError, SecretsNotFoundError, WrongPassphraseError } from '../../common/errors.js';
import { scryptKey } from '../../common/crypto/scrypt.js';
import { readSecretsFile, writeSecretsFile } from './file-store.js';
import { copySecrets, decryptSecrets, encryptSecretsV2, generateSecrets, serializeSecretsFile, wipeSecrets } from './format.js';
import type { StorageSecrets } from './format.js';
import { generateRecoveryCode, normalizeRecoveryCode, recoveryDocId } from './recovery-code.js';

export { recoveryDocId } from './recovery-code.js';

/**
 * Where recovery documents live: the server's `shared` database (`GET/PUT /shared/doc/<id>`). The HTTP
 * implementation belongs to the sync client; tests use an in-memory one.
 */
export interface RemoteSecretsStore {
  /** The document's JSON content and revision, or `null` when it does not exist (or is deleted). */
  get(docId: string): Promise<{ content: unknown; rev: string } | null>;
  /** Create (`oldRev` null) or update a document; resolves to the new revision. */
  put(docId: string, content: unknown, oldRev: string | null): Promise<string>;
}

/** Options of {@link SecretsManager.bootstrap}. */
export interface BootstrapOptions {
  uuid: string;
  passphrase: string;
  /** Path of the local secrets file (`soledad.json`). */
  secretsPath: string;
  /** The shared db; without it secrets are only local. */
  remote?: RemoteSecretsStore;
}

/** Options of {@link SecretsManager.recover}. */
export interface RecoverOptions {
  uuid: string;
  recoveryCode: string;
  /** The passphrase the recovered secrets are stored under from now on. */
  newPassphrase: string;
  secretsPath: string;
  remote?: RemoteSecretsStore;
}

/** How a {@link SecretsManager} got its secrets. */
export type SecretsSource = 'local' | 'remote' | 'generated' | 'recovered';

/**
 * Content left in place of a recovery document after a passphrase change, so that the old passphrase stops
 * unlocking anything. Not empty on purpose: a real Soledad client treats an empty content as "absent" and would
 * generate new secrets, while this one makes it fail.
 */
export const SUPERSEDED_CONTENT: Readonly<{ superseded: true }> = Object.freeze({ superseded: true });

function isSuperseded(content: unknown): boolean {
  return typeof content === 'object' && content !== null && (content as { superseded?: unknown }).superseded === true;
}

/**
 * Holds a user's storage secrets and keeps the local file and the recovery document in step.
 *
 * @example
 * const mgr = await SecretsManager.bootstrap({ uuid, passphrase, secretsPath, remote });
 * const key = await mgr.localDbKey();      // 32-byte SQLCipher key
 * const secret = mgr.secrets.remoteSecret; // for document encryption
 * mgr.close();
 */
export class SecretsManager {
  readonly #uuid: string;
  readonly #secretsPath: string;
  readonly #remote: RemoteSecretsStore | undefined;
  #secrets: StorageSecrets;
  /** Shared-db id of the recovery document under the current passphrase (the passphrase itself is not kept). */
  #docId: string;
  #localKey: Buffer | null = null;
  #closed = false;
  /** Where the secrets came from when this manager was created. */
  readonly source: SecretsSource;

  private constructor(
    uuid: string,
    secretsPath: string,
    remote: RemoteSecretsStore | undefined,
    secrets: StorageSecrets,
    docId: string,
    source: SecretsSource,
  ) {
    this.#uuid = uuid;
    this.#secretsPath = secretsPath;
    this.#remote = remote;
    this.#secrets = secrets;
    this.#docId = docId;
    this.source = source;
  }

  /**
   * Load or create the secrets, in the original's order: local file, then the recovery document
   * `sha256(utf8(passphrase)+uuid)` in the shared db, then fresh secrets. Secrets read from a v1 file, from the
   * server or freshly made are stored both remotely and locally (remote first, so a device never starts
   * encrypting with secrets the server does not have). A wrong passphrase throws
   * {@link WrongPassphraseError} and changes nothing on disk.
   *
   * @example
   * const mgr = await SecretsManager.bootstrap({ uuid: 'u1', passphrase: 'pw', secretsPath: '/x/soledad.json' });
   */
  static async bootstrap(opts: BootstrapOptions): Promise<SecretsManager> {
    const docId = recoveryDocId(opts.passphrase, opts.uuid);
    const local = await readSecretsFile(opts.secretsPath);
    if (local !== null) {
      const { secrets, version } = await decryptSecrets(local, opts.passphrase);
      const mgr = new SecretsManager(opts.uuid, opts.secretsPath, opts.remote, secrets, docId, 'local');
      if (version < 2) await mgr.#store(opts.passphrase);
      return mgr;
    }

    const remote = opts.remote;
    if (remote !== undefined) {
      const found = await remote.get(docId);
      if (found !== null) return SecretsManager.#fromRemote(opts, docId, found);
    }

    const mgr = new SecretsManager(opts.uuid, opts.secretsPath, remote, generateSecrets(), docId, 'generated');
    try {
      await mgr.#store(opts.passphrase, null);
    } catch (err) {
      mgr.close();
      // Another device created the recovery document between our read and our write: use its secrets.
      if (remote !== undefined && err instanceof RevisionConflictError) {
        const found = await remote.get(docId);
        if (found !== null) return SecretsManager.#fromRemote(opts, docId, found);
      }
      throw err;
    }
    return mgr;
  }

  static async #fromRemote(
    opts: BootstrapOptions,
    docId: string,
    found: { content: unknown; rev: string },
  ): Promise<SecretsManager> {
    if (isSuperseded(found.content)) throw new WrongPassphraseError();
    const { secrets } = await decryptSecrets(found.content, opts.passphrase);
    const mgr = new SecretsManager(opts.uuid, opts.secretsPath, opts.remote, secrets, docId, 'remote');
    try {
      await mgr.#store(opts.passphrase, found.rev);
    } catch (err) {
      mgr.close();
      throw err;
    }
    return mgr;
  }

  /**
   * Restore secrets with a recovery code (from the shared db, or from the `<secretsPath>.recovery` file when the
   * server has none) and store them under `newPassphrase`, replacing the local secrets file. Throws
   * {@link SecretsNotFoundError} when nothing is found and {@link WrongPassphraseError} for a wrong code.
   *
   * @example
   * const mgr = await SecretsManager.recover({ uuid, recoveryCode, newPassphrase: 'new pw', secretsPath, remote });
   */
  static async recover(opts: RecoverOptions): Promise<SecretsManager> {
    const code = normalizeRecoveryCode(opts.recoveryCode);
    let content: unknown = null;
    if (opts.remote !== undefined) {
      const found = await opts.remote.get(recoveryDocId(code, opts.uuid));
      if (found !== null) content = found.content;
    }
    if (content === null) content = await readSecretsFile(recoveryPath(opts.secretsPath));
    if (content === null) throw new SecretsNotFoundError('No secrets are stored under this recovery code');
    const { secrets } = await decryptSecrets(content, code);
    const docId = recoveryDocId(opts.newPassphrase, opts.uuid);
    const mgr = new SecretsManager(opts.uuid, opts.secretsPath, opts.remote, secrets, docId, 'recovered');
    try {
      await mgr.#store(opts.newPassphrase);
    } catch (err) {
      mgr.close();
      throw err;
    }
    return mgr;
  }

  /** The unlocked secrets. Throws {@link DatabaseClosedError} after {@link close}. */
  get secrets(): StorageSecrets {
    this.#assertOpen();
    return this.#secrets;
  }

  /**
   * The local database key `scrypt(localSecret, localSalt)` (computed once). Returns a copy the caller may wipe.
   *
   * @example
   * const key = await mgr.localDbKey(); // PRAGMA key = "x'<key hex>'"
   */
  async localDbKey(): Promise<Buffer> {
    this.#assertOpen();
    if (this.#localKey === null) {
      const key = await scryptKey(this.#secrets.localSecret, this.#secrets.localSalt);
      if (this.#closed) {
        key.fill(0);
        this.#assertOpen();
      }
      this.#localKey = key;
    }
    return Buffer.from(this.#localKey);
  }

  /**
   * Re-wrap the same secrets under `newPassphrase`: writes the recovery document under the new id, replaces the
   * local file, then overwrites the old recovery document with {@link SUPERSEDED_CONTENT}, so the old
   * passphrase unlocks nothing any more. Data keys do not change.
   *
   * @example
   * await mgr.changePassphrase('a better passphrase');
   */
  async changePassphrase(newPassphrase: string): Promise<void> {
    this.#assertOpen();
    const oldDocId = this.#docId;
    const newDocId = recoveryDocId(newPassphrase, this.#uuid);
    this.#docId = newDocId;
    try {
      await this.#store(newPassphrase);
    } catch (err) {
      this.#docId = oldDocId;
      throw err;
    }
    const remote = this.#remote;
    if (remote !== undefined && oldDocId !== newDocId) {
      const old = await remote.get(oldDocId);
      if (old !== null && !isSuperseded(old.content)) await remote.put(oldDocId, SUPERSEDED_CONTENT, old.rev);
    }
  }

  /**
   * Make a new recovery code and store the secrets wrapped under it: remotely under
   * `sha256(utf8(code)+uuid)` and locally in `<secretsPath>.recovery` (which holds only the wrapped secrets,
   * never the code). Show the code to the user once; it is not kept. Earlier codes stay valid on the server.
   *
   * @example
   * const code = await mgr.createRecoveryCode(); // 24 lowercase letters
   */
  async createRecoveryCode(): Promise<string> {
    this.#assertOpen();
    const code = generateRecoveryCode();
    const doc = await encryptSecretsV2(this.#secrets, code);
    if (this.#remote !== undefined) {
      const id = recoveryDocId(code, this.#uuid);
      const existing = await this.#remote.get(id);
      await this.#remote.put(id, doc, existing?.rev ?? null);
    }
    await writeSecretsFile(recoveryPath(this.#secretsPath), serializeSecretsFile(doc));
    return code;
  }

  /** Zero every secret and key this manager holds; later use throws {@link DatabaseClosedError}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    wipeSecrets(this.#secrets);
    this.#localKey?.fill(0);
    this.#localKey = null;
  }

  /** A copy of the secrets that survives {@link close} (the caller then owns and wipes it). */
  exportSecrets(): StorageSecrets {
    return copySecrets(this.secrets);
  }

  /** Remote first, then local: see {@link SecretsManager.bootstrap}. `rev` undefined means "look it up". */
  async #store(passphrase: string, rev?: string | null): Promise<void> {
    const doc = await encryptSecretsV2(this.#secrets, passphrase);
    const remote = this.#remote;
    if (remote !== undefined) {
      const oldRev = rev !== undefined ? rev : ((await remote.get(this.#docId))?.rev ?? null);
      await remote.put(this.#docId, doc, oldRev);
    }
    await writeSecretsFile(this.#secretsPath, serializeSecretsFile(doc));
  }

  #assertOpen(): void {
    if (this.#closed) throw new DatabaseClosedError('The secrets manager is closed');
  }
}

/** Path of the local copy of the secrets wrapped under the recovery code. */
export function recoveryPath(secretsPath: string): string {
  return `${secretsPath}.recovery`;
}
