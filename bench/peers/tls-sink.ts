/**
 * The receiving end of the physical-limit TLS measurement, in its own process like a real server:
 * `node --import tsx bench/peers/tls-sink.ts <certFile> <keyFile>`; prints `listening <port>`. Each connection
 * sends an 8-byte big-endian length, then that many bytes; the sink answers one byte once it has them all.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:tls';

const [certFile, keyFile] = process.argv.slice(2);
if (certFile === undefined || keyFile === undefined) {
  console.error('usage: tls-sink.ts <certFile> <keyFile>');
  process.exit(2);
}
const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (socket) => {
  // As an HTTP server does: no Nagle delay on the one-byte answer (it cost a 40 ms delayed-ACK stall at times).
  socket.setNoDelay(true);
  let expected = -1;
  let received = 0;
  let head = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    if (expected < 0) {
      head = Buffer.concat([head, chunk]);
      if (head.length < 8) return;
      expected = Number(head.readBigUInt64BE(0));
      received = head.length - 8;
    } else {
      received += chunk.length;
    }
    if (received >= expected) socket.end(Buffer.from([1]));
  });
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(`listening ${typeof address === 'object' && address !== null ? address.port : 0}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
