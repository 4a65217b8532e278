/**
 * A loopback TCP relay under test control, TLS still end to end: cut every connection once N more bytes have
 * passed in one direction (so a cut can be placed inside any phase of a sync), stall (stop relaying but keep the
 * connections open, the way a dead route looks), or throttle to a given rate.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** `up`: client → server; `down`: server → client. */
export type Direction = 'up' | 'down';

/** A running relay. */
export interface NetProxy {
  /** `https://127.0.0.1:<port>/`. */
  readonly url: string;
  /** Bytes relayed so far in each direction (all connections). */
  readonly bytes: Record<Direction, number>;
  /** Connections cut so far. */
  readonly cuts: number;
  /** Cut every connection once `n` more bytes passed in `dir` (one shot). */
  cutAfter(dir: Direction, n: number): void;
  /** Stop relaying once `n` more bytes passed in `dir` (connections stay open, silent), until `reset()`. */
  stallAfter(dir: Direction, n: number): void;
  /** Relay at most `bytesPerSecond` per direction and connection (`null`: full speed). */
  throttle(bytesPerSecond: number | null): void;
  /** Faithful relaying again. */
  reset(): void;
  close(): Promise<void>;
}

/** Start a relay to `127.0.0.1:targetPort`. */
export async function startNetProxy(targetPort: number): Promise<NetProxy> {
  const bytes: Record<Direction, number> = { up: 0, down: 0 };
  let cuts = 0;
  let cutAt: { dir: Direction; at: number } | null = null;
  let stallAt: { dir: Direction; at: number } | null = null;
  let rate: number | null = null;
  const pairs = new Set<{ client: Socket; upstream: Socket }>();

  const cutAll = (): void => {
    for (const p of pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    cuts += pairs.size;
    pairs.clear();
  };

  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    const relay = (from: Socket, to: Socket, dir: Direction): void => {
      let queue: Buffer[] = [];
      let pumping = false;
      const pump = async (): Promise<void> => {
        if (pumping) return;
        pumping = true;
        while (queue.length > 0 && !to.destroyed) {
          let chunk = queue.shift()!;
          if (rate !== null) {
            const piece = Math.max(1, Math.floor(rate / 4));
            if (chunk.length > piece) {
              queue.unshift(chunk.subarray(piece));
              chunk = chunk.subarray(0, piece);
            }
            await new Promise((r) => setTimeout(r, (chunk.length / rate!) * 1000));
          }
          if (stallAt !== null && stallAt.dir === dir && bytes[dir] >= stallAt.at) {
            queue = [];
            break;
          }
          let send = chunk;
          if (stallAt !== null && stallAt.dir === dir && bytes[dir] + chunk.length > stallAt.at) {
            send = chunk.subarray(0, stallAt.at - bytes[dir]);
          }
          let cutting = false;
          if (cutAt !== null && cutAt.dir === dir && bytes[dir] + send.length > cutAt.at) {
            send = send.subarray(0, Math.max(0, cutAt.at - bytes[dir]));
            cutting = true;
          }
          bytes[dir] += send.length;
          if (send.length > 0) to.write(send);
          if (cutting) {
            cutAt = null;
            setImmediate(cutAll);
            break;
          }
        }
        pumping = false;
      };
      from.on('data', (chunk: Buffer) => {
        queue.push(chunk);
        void pump();
      });
    };
    relay(client, upstream, 'up');
    relay(upstream, client, 'down');
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
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
    bytes,
    get cuts() {
      return cuts;
    },
    cutAfter(dir, n) {
      cutAt = { dir, at: bytes[dir] + n };
    },
    stallAfter(dir, n) {
      stallAt = { dir, at: bytes[dir] + n };
    },
    throttle(r) {
      rate = r;
    },
    reset() {
      cutAt = null;
      stallAt = null;
      rate = null;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
