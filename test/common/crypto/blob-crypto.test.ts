import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { b64uDecode, b64uEncode } from '../../../src/common/crypto/base64.js';
import { BLOB_REV, blobCiphertextSize, decryptBlobStream, encryptBlobStream } from '../../../src/common/crypto/blob-crypto.js';
import { decodePreamble, encodePreamble } from '../../../src/common/crypto/preamble.js';
import {
  EncryptionSchemeNotImplementedError,
  InvalidContentError,
  InvalidPreambleError,
  MacMismatchError,
  TamperedDocumentError,
} from '../../../src/common/errors.js';
import { runPython } from './python.js';

const secret = randomBytes(512);
const BLOB = 'b-0f1e2d3c';

/** Feed `data` in chunks of `size` bytes (1 exercises every boundary). */
function source(data: Buffer, size: number): Readable {
  let off = 0;
  return new Readable({
    read() {
      if (off >= data.length) this.push(null);
      else {
        this.push(data.subarray(off, off + size));
        off += size;
      }
    },
  });
}

async function collect(input: Readable, transform: NodeJS.ReadWriteStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(input, transform, new Writable({ write(c: Buffer, _e, cb) { chunks.push(c); cb(); } }));
  return Buffer.concat(chunks);
}

async function encrypt(plain: Buffer, chunk = 65536): Promise<Buffer> {
  return collect(source(plain, chunk), encryptBlobStream(secret, BLOB, plain.length));
}

test('blob format: B64U(preamble) + space + ct + tag, sized as the original computes', async () => {
  const plain = randomBytes(10000);
  const blob = await encrypt(plain, 777);
  assert.equal(blob.length, blobCiphertextSize(plain.length));
  assert.equal(blob[736], 0x20);
  const pre = decodePreamble(b64uDecode(blob.subarray(0, 736).toString('latin1'), Error));
  assert.equal(pre.docId, BLOB);
  assert.equal(pre.rev, BLOB_REV);
  assert.equal(pre.contentSize, 16384);
});

test('blob round trip with several chunkings, including empty and 1-byte chunks', async () => {
  for (const [size, enc, dec] of [[0, 1, 1], [1, 1, 1], [15, 4, 3], [16, 16, 17], [100000, 4096, 1], [70000, 65536, 65536]] as const) {
    const plain = randomBytes(size);
    const blob = await encrypt(plain, enc);
    const out = await collect(source(blob, dec), decryptBlobStream(secret, BLOB));
    assert.deepEqual(out, plain, `size ${size}`);
  }
});

test('independent Python implementation decrypts our blob', async () => {
  const plain = randomBytes(5000);
  const blob = await encrypt(plain, 1000);
  const out = runPython(PY_BLOB, { secret: secret.toString('hex'), blob_id: BLOB, blob: blob.toString('base64') }) as { plain: string };
  assert.deepEqual(Buffer.from(out.plain, 'base64'), plain);
});

test('tampering fails the stream with the named error', async () => {
  const plain = randomBytes(3000);
  const blob = await encrypt(plain);
  const run = (b: Buffer, id = BLOB): Promise<Buffer> => collect(source(b, 500), decryptBlobStream(secret, id));

  const flipCt = Buffer.from(blob);
  flipCt[800]! ^= 1;
  await assert.rejects(run(flipCt), MacMismatchError);
  const flipTag = Buffer.from(blob);
  flipTag[flipTag.length - 1]! ^= 1;
  await assert.rejects(run(flipTag), MacMismatchError);
  await assert.rejects(run(blob.subarray(0, blob.length - 1)), MacMismatchError);
  await assert.rejects(run(blob.subarray(0, 740)), MacMismatchError);
  await assert.rejects(run(blob.subarray(0, 700)), InvalidPreambleError);
  await assert.rejects(run(blob, 'b-other'), TamperedDocumentError);
  await assert.rejects(run(Buffer.alloc(2000, 0x41)), InvalidPreambleError);
  await assert.rejects(run(Buffer.from('!!!! xyz')), InvalidPreambleError);
});

test('external (scheme 2) blobs are rejected by default and passed through on request', async () => {
  const body = Buffer.from('-----BEGIN PGP MESSAGE-----\n...');
  const pre = encodePreamble({ docId: 'mx-1', rev: '0', scheme: 2, method: 3, contentSize: body.length });
  const stored = Buffer.concat([Buffer.from(`${b64uEncode(pre)} `), body]);
  await assert.rejects(collect(source(stored, 100), decryptBlobStream(secret, 'mx-1')), EncryptionSchemeNotImplementedError);
  let seen = 0;
  const out = await collect(
    source(stored, 100),
    decryptBlobStream(secret, 'mx-1', { external: 'passthrough', onPreamble: (p) => { seen = p.method; } }),
  );
  assert.deepEqual(out, body);
  assert.equal(seen, 3);
});

test('encryption enforces the declared size', async () => {
  await assert.rejects(collect(source(randomBytes(10), 4), encryptBlobStream(secret, BLOB, 11)), InvalidContentError);
  await assert.rejects(collect(source(randomBytes(12), 4), encryptBlobStream(secret, BLOB, 11)), InvalidContentError);
});

const PY_BLOB = `
import sys, json, struct, hmac, hashlib, base64
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
a = json.loads(sys.stdin.read())
secret = bytes.fromhex(a['secret']); blob = base64.b64decode(a['blob'])
head, body = blob.split(b' ', 1)
pre = base64.urlsafe_b64decode(head)
magic, scheme, method, ts, iv, bid, rev, size = struct.unpack('2sbbQ16s255p255pQ', pre)
assert magic == b'\\x13\\x37' and scheme == 1 and method == 2 and rev == b'ImmutableRevision'
assert bid == a['blob_id'].encode()
key = hmac.new(secret[64:], bid, hashlib.sha256).digest()
print(json.dumps({'plain': base64.b64encode(AESGCM(key).decrypt(iv, body, pre)).decode()}))
`;

test('both directions stream: output appears before the input has ended', async () => {
  const chunk = randomBytes(64 * 1024);
  const chunks = 64; // 4 MiB in all
  const size = chunk.length * chunks;
  for (const mode of ['encrypt', 'decrypt'] as const) {
    let produced = 0;
    let outputBeforeEnd = false;
    let blob: Buffer | null = null;
    if (mode === 'decrypt') blob = await collect(
      new Readable({ read() { this.push(produced++ < chunks ? chunk : null); } }),
      encryptBlobStream(secret, BLOB, size),
    );
    produced = 0;
    let off = 0;
    const src = new Readable({
      read() {
        if (mode === 'encrypt') this.push(produced++ < chunks ? chunk : null);
        else if (off >= blob!.length) this.push(null);
        else { this.push(blob!.subarray(off, off + chunk.length)); off += chunk.length; produced++; }
      },
    });
    let srcEnded = false;
    src.on('end', () => { srcEnded = true; });
    const t = mode === 'encrypt' ? encryptBlobStream(secret, BLOB, size) : decryptBlobStream(secret, BLOB);
    let total = 0;
    await pipeline(src, t, new Writable({
      highWaterMark: 1,
      write(c: Buffer, _e, cb) {
        if (!srcEnded && total > 0) outputBeforeEnd = true;
        total += c.length;
        cb();
      },
    }));
    assert.ok(outputBeforeEnd, mode);
    assert.equal(total, mode === 'encrypt' ? blobCiphertextSize(size) : size);
  }
});
