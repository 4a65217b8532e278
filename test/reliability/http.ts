/**
 * Raw HTTP(S) requests against a server process for the campaign: any method, path, headers and body, with a
 * deadline, and the answer read in full (bounded). No client-side validation gets in the way.
 */
import { readFileSync } from 'node:fs';
import { Agent } from 'undici';

/** An answer. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A reusable connection pool to one server (TLS with its certificate, or plain HTTP). */
export function agentFor(certFile: string | undefined, connections = 8): Agent {
  return new Agent({
    connections,
    connect: certFile === undefined ? {} : { ca: [readFileSync(certFile)] },
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
}

/** Send one request and read the answer (at most `maxBody` bytes of it). */
export async function send(
  agent: Agent,
  base: string,
  req: { method: string; path: string; headers?: Record<string, string>; body?: string | Buffer | null },
  maxBody = 256 * 1024,
): Promise<Answer> {
  // The path goes out as written (no URL normalization): traversal and odd encodings must reach the server.
  const res = await agent.request({
    origin: new URL(base).origin,
    path: req.path,
    method: req.method as 'GET',
    headers: req.headers ?? {},
    body: req.body ?? null,
  });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res.body) {
    chunks.push(c as Buffer);
    size += (c as Buffer).length;
    if (size > maxBody) {
      res.body.destroy();
      break;
    }
  }
  return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') };
}

/** Whether an error answer carries a body that says what went wrong (JSON `{"error"}` or the plain 401 text). */
export function hasErrorBody(a: Answer): boolean {
  if (a.status === 401) return a.body.trim() === 'Unauthorized' || /"error"\s*:/.test(a.body);
  try {
    const parsed = JSON.parse(a.body) as { error?: unknown };
    return typeof parsed.error === 'string' && parsed.error !== '';
  } catch {
    return false;
  }
}

/**
 * One request over a raw TLS (or plain) socket: the request head, then `body` chunks written while the server
 * keeps the connection open, everything the server sends collected until it closes or `timeoutMs` passes. Shows
 * what a server answers to a body it refuses mid-way, which ordinary clients hide behind EPIPE.
 */
export async function rawExchange(opts: {
  port: number;
  ca?: Buffer;
  head: string;
  body?: AsyncIterable<Buffer>;
  timeoutMs?: number;
  /** Half-close the connection after the body (a client that stops sending). */
  endAfterBody?: boolean;
}): Promise<{ status: number; headers: string; body: string; closedByServer: boolean; timedOut: boolean; ms: number }> {
  const { connect: tlsConnect } = await import('node:tls');
  const { connect: netConnect } = await import('node:net');
  const t0 = Date.now();
  const socket = opts.ca === undefined
    ? netConnect(opts.port, '127.0.0.1')
    : tlsConnect({ host: '127.0.0.1', port: opts.port, ca: opts.ca, servername: 'localhost' });
  socket.on('error', () => undefined);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  let closedByServer = false;
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    socket.destroy();
  }, opts.timeoutMs ?? 20_000);
  socket.once('end', () => {
    closedByServer = true;
  });
  await new Promise<void>((resolve) => {
    socket.once(opts.ca === undefined ? 'connect' : 'secureConnect', () => resolve());
    socket.once('close', () => resolve());
  });
  if (!socket.destroyed) socket.write(opts.head);
  if (opts.body !== undefined) {
    for await (const c of opts.body) {
      if (socket.destroyed || socket.writableEnded || chunks.length > 0) break;
      if (!socket.write(c)) await new Promise((r) => { socket.once('drain', r); socket.once('close', r); });
    }
  }
  if (opts.endAfterBody === true && !socket.destroyed) socket.end();
  await closed;
  clearTimeout(timer);
  let text = Buffer.concat(chunks).toString('latin1');
  // Interim answers (`100 Continue`) precede the real one.
  while (/^HTTP\/1\.[01] 1\d\d /.test(text) && text.includes('\r\n\r\n')) text = text.slice(text.indexOf('\r\n\r\n') + 4);
  const split = text.indexOf('\r\n\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
  return {
    status,
    headers: split < 0 ? text : text.slice(0, split),
    body: split < 0 ? '' : text.slice(split + 4),
    closedByServer: closedByServer || status > 0,
    timedOut,
    ms: Date.now() - t0,
  };
}
