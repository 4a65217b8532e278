/** A throwaway self-signed certificate for 127.0.0.1 / localhost, generated once per test process. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';

/** PEM key and certificate, plus the certificate written to a file (for `certFile`). */
export interface TestCert {
  key: string;
  cert: string;
  certFile: string;
}

let cached: Promise<TestCert> | undefined;

/** The process-wide test certificate (valid for `127.0.0.1` and `localhost`). */
export function testCert(): Promise<TestCert> {
  cached ??= (async () => {
    const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
      keySize: 2048,
      extensions: [
        { name: 'basicConstraints', cA: true },
        { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
      ],
    });
    const dir = mkdtempSync(join(tmpdir(), 'soledad-cert-'));
    const certFile = join(dir, 'cert.pem');
    writeFileSync(certFile, pems.cert);
    return { key: pems.private, cert: pems.cert, certFile };
  })();
  return cached;
}
