/**
 * The incoming box end to end: a tiny MX-like trusted application encrypts mail to the user's public key and
 * delivers it to the server's Services API; the user's device registers a consumer that decrypts each message
 * with the private key and saves it as a document. Run it with
 *
 *   npx tsx examples/mx-delivery.ts
 *
 * It starts a throwaway server (in this process, data in a temp directory), mints a user token, delivers three
 * messages, processes them once and prints the resulting documents.
 *
 * To look into a box without writing a consumer, the command line has one built in:
 * `soledad incoming list` and `soledad incoming process` (docs/cli.md).
 *
 * The encryption is a stand-in for OpenPGP built from node:crypto: a fresh AES-256-GCM key per message, wrapped
 * with the recipient's RSA-OAEP (SHA-256) public key. Payload layout:
 * `0x01 ‖ u16 length of the wrapped key ‖ wrapped key ‖ 12-byte IV ‖ ciphertext ‖ 16-byte tag`.
 */
import { constants, createCipheriv, createDecipheriv, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { request } from 'undici';
import { Soledad, type IncomingBoxConsumer } from '../src/index.js';
import { encodeTokenAuthorization } from '../src/common/protocol/auth.js';
import { createLogger, startServer } from '../src/server/main.js';
import { loadConfig } from '../src/server/config.js';

// ---- the trusted application's side (MX) ----

/**
 * Encrypt `plaintext` for the holder of `publicKey`.
 *
 * @example
 * const payload = encryptForRecipient(publicKey, Buffer.from('Subject: hi\n\nhello'));
 */
export function encryptForRecipient(publicKey: KeyObject | string, plaintext: Buffer): Buffer {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const wrapped = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, key);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  key.fill(0);
  const head = Buffer.alloc(3);
  head[0] = 1;
  head.writeUInt16BE(wrapped.length, 1);
  return Buffer.concat([head, wrapped, iv, body, cipher.getAuthTag()]);
}

/**
 * Decrypt a payload made by {@link encryptForRecipient}; throws on any tampering.
 *
 * @example
 * const clear = decryptWithKey(privateKey, payload);
 */
export function decryptWithKey(privateKey: KeyObject | string, payload: Buffer): Buffer {
  if (payload.length < 3 || payload[0] !== 1) throw new Error('not a payload of this format');
  const n = payload.readUInt16BE(1);
  const wrapped = payload.subarray(3, 3 + n);
  const iv = payload.subarray(3 + n, 15 + n);
  const tag = payload.subarray(payload.length - 16);
  const key = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, wrapped);
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAuthTag(tag);
  const clear = Buffer.concat([decipher.update(payload.subarray(15 + n, payload.length - 16)), decipher.final()]);
  key.fill(0);
  return clear;
}

/** Where and as whom a trusted application delivers. */
export interface DeliveryTarget {
  /** The server's Services API, e.g. `http://127.0.0.1:2525/` (loopback only). */
  servicesUrl: string;
  /** The service name of the services tokens file (`mx` in `mx:<token>`). */
  service: string;
  /** That service's token (never logged). */
  token: string;
}

/**
 * Deliver one encrypted payload to a user's incoming box (`PUT /incoming/<uuid>/<id>`). Resolves with the HTTP
 * status and, on failure, the server's JSON error (e.g. 507 `{"error": "quota exceeded", "message": …}`).
 *
 * @example
 * const { status } = await deliver(target, uuid, randomUUID().replace(/-/g, ''), payload);
 */
export async function deliver(
  target: DeliveryTarget,
  uuid: string,
  id: string,
  payload: Buffer,
  namespace?: string,
): Promise<{ status: number; error?: { error: string; message?: string } }> {
  const url = new URL(`incoming/${encodeURIComponent(uuid)}/${encodeURIComponent(id)}`, target.servicesUrl);
  if (namespace !== undefined) url.searchParams.set('namespace', namespace);
  const res = await request(url, {
    method: 'PUT',
    body: payload,
    headers: {
      authorization: encodeTokenAuthorization(target.service, target.token),
      'content-type': 'application/octet-stream',
      'content-length': String(payload.length),
    },
  });
  const text = await res.body.text();
  if (res.statusCode === 200) return { status: 200 };
  let error: { error: string; message?: string };
  try {
    error = JSON.parse(text) as { error: string; message?: string };
  } catch {
    error = { error: text };
  }
  return { status: res.statusCode, error };
}

// ---- the user's side: a consumer that decrypts and saves ----

/** A decrypted mail as the consumer stores it. */
export interface MailParts {
  /** The `Subject:` header. */
  subject: string;
  /** Everything after the headers. */
  body: string;
}

/**
 * A consumer for the `MX` namespace: decrypt with the user's private key, split headers from body, save one
 * document per message under an id derived from the message id (so a replayed message updates the same document
 * instead of duplicating it).
 *
 * @example
 * soledad.incoming.register(mailConsumer(soledad, privateKey), { namespace: 'MX' });
 */
export function mailConsumer(soledad: Soledad, privateKey: KeyObject | string): IncomingBoxConsumer<MailParts> {
  return {
    name: 'mail',
    version: '1',
    process(item, _itemId, encrypted) {
      const clear = (encrypted ? decryptWithKey(privateKey, item) : item).toString('utf8');
      const split = clear.indexOf('\n\n');
      const headers = split < 0 ? clear : clear.slice(0, split);
      const subject = /^Subject: (.*)$/m.exec(headers)?.[1] ?? '(no subject)';
      return { subject, body: split < 0 ? '' : clear.slice(split + 2) };
    },
    async save(parts, itemId) {
      await soledad.createDoc({ type: 'mail', incomingId: itemId, subject: parts.subject, body: parts.body }, `mail-${itemId}`);
    },
  };
}

// ---- a complete run ----

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'soledad-mx-example-'));
  const uuid = randomBytes(16).toString('hex');
  const serviceToken = randomBytes(24).toString('base64url');
  const tokensFile = join(dir, 'services.tokens');
  writeFileSync(tokensFile, `# trusted applications of the Services API\nmx:${serviceToken}\n`, { mode: 0o600 });
  const config = loadConfig(
    { SOLEDAD_DATA_DIR: join(dir, 'server'), HTTPS_PORT: '0', LOCAL_SERVICES_PORT: '0' },
    `[soledad-server]\nservices_tokens_file = ${tokensFile}\n`,
  );
  const server = await startServer({ config, usersHost: '127.0.0.1', print: () => undefined, logger: createLogger(config, 'warn') });
  const authToken = await server.backend.tokens.addToken(uuid);
  const soledad = await Soledad.open({
    uuid, passphrase: 'correct horse battery staple', secretsPath: join(dir, 'device', 'soledad.json'),
    localDbPath: join(dir, 'device', 'soledad.u1db'), serverUrl: server.usersUrl, certFile: server.tls.certPath, authToken,
  });
  const incoming = soledad.incoming;
  try {
    // The user's key pair; in real life the MX looks the public key up (e.g. in a key server).
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });

    // MX: encrypt and deliver.
    const target: DeliveryTarget = { servicesUrl: server.servicesUrl, service: 'mx', token: serviceToken };
    for (const [i, subject] of ['Welcome', 'Your invoice', 'Lunch?'].entries()) {
      const mail = Buffer.from(`From: sender${i}@example.org\nSubject: ${subject}\n\nMessage number ${i + 1}.\n`);
      const { status, error } = await deliver(target, uuid, randomBytes(16).toString('hex'), encryptForRecipient(publicKey, mail));
      console.log(`MX delivered "${subject}": ${status}${error === undefined ? '' : ` ${error.error}: ${error.message ?? ''}`}`);
    }

    // The device: register the consumer, process what is pending.
    incoming.register(mailConsumer(soledad, privateKey), { namespace: 'MX' });
    incoming.on('processed', (e) => console.log(`processed ${e.itemId}`));
    console.log(`pending on the server: ${await incoming.pendingCount('MX')}`);
    const summary = await incoming.processOnce();
    console.log(`processed ${summary.processed.length}, failed ${summary.failed.length}; pending now: ${await incoming.pendingCount('MX')}`);
    for (const doc of (await soledad.getAllDocs()).docs) {
      console.log(`  ${doc.docId}: ${String(doc.content?.['subject'])} / ${JSON.stringify(doc.content?.['body'])}`);
    }
  } finally {
    await soledad.close(); // closes the incoming box too
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
