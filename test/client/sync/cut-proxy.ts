/**
 * A TCP relay between a client and the real server that can cut connections after a number of bytes in either
 * direction: a network failure at a chosen point of a sync, with TLS still end to end.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** When to cut: after this many bytes client→server (`up`) or server→client (`down`), counted per connection. */
export interface CutRule {
  up?: number;
  down?: number;
}

/** A running relay. */
export interface CutProxy {
  /** `https://127.0.0.1:<port>/`. */
  url: string;
  /** Cut the next connections that reach the given byte counts; `null` relays faithfully. */
  setRule(rule: CutRule | null): void;
  /** How many connections were cut so far. */
  readonly cuts: number;
  close(): Promise<void>;
}

/** Start a relay to `127.0.0.1:targetPort`. */
export async function startCutProxy(targetPort: number): Promise<CutProxy> {
  let rule: CutRule | null = null;
  let cuts = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    let up = 0;
    let down = 0;
    let cut = false;
    const kill = (): void => {
      if (cut) return;
      cut = true;
      cuts += 1;
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      up += chunk.length;
      if (rule?.up !== undefined && up > rule.up) {
        // Let the bytes up to the threshold through, then drop the rest and the connection.
        const keep = chunk.length - (up - rule.up);
        if (keep > 0) upstream.write(chunk.subarray(0, keep));
        kill();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      down += chunk.length;
      if (rule?.down !== undefined && down > rule.down) {
        const keep = chunk.length - (down - rule.down);
        if (keep > 0) client.write(chunk.subarray(0, keep));
        setImmediate(kill);
        return;
      }
      client.write(chunk);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}/`,
    setRule(r) {
      rule = r;
    },
    get cuts() {
      return cuts;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
