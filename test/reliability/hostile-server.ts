/**
 * A server that misbehaves on purpose: a TLS front (same certificate as the real server, so the client trusts it)
 * that relays every request to the real Users API and lets a test rewrite the answer before the client sees it.
 * It is the operator-controlled server of the trust model: it has every ciphertext it ever stored, and nothing
 * else.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import { testCert } from '../client/http/tls-fixture.js';

/** One relayed exchange, as the hostile server sees it. */
export interface Exchange {
  method: string;
  path: string;
  requestContentType: string;
  requestBody: Buffer;
  status: number;
  contentType: string;
  /** Response headers of the real server (lowercase names, hop-by-hop ones removed). */
  headers: Record<string, string>;
  body: Buffer;
}

/** What to answer instead: a new body (and optionally status / content type), or `null` to relay unchanged. */
export type Rewrite = (ex: Exchange) => {
  body: Buffer | string;
  status?: number;
  contentType?: string;
  headers?: Record<string, string>;
} | null;

/** A running hostile server. */
export interface HostileServer {
  /** `https://127.0.0.1:<port>/`. */
  readonly url: string;
  /** Rewrite answers from now on (`null`: relay faithfully). */
  setRewrite(rewrite: Rewrite | null): void;
  /** How many answers were rewritten so far. */
  readonly rewritten: number;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Start a hostile front for the real server at `targetUrl` (whose certificate is `certFile`'s). */
export async function startHostileServer(targetUrl: string): Promise<HostileServer> {
  const cert = await testCert();
  const agent = new Agent({ connect: { ca: [cert.cert] } });
  let rewrite: Rewrite | null = null;
  let rewritten = 0;
  const target = new URL(targetUrl);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestBody = await readBody(req);
    const headers: Record<string, string> = {};
    for (const name of ['authorization', 'content-type']) {
      const v = req.headers[name];
      if (typeof v === 'string') headers[name] = v;
    }
    const upstream = await request(new URL(req.url ?? '/', target), {
      method: (req.method ?? 'GET') as 'GET',
      headers,
      body: requestBody.length > 0 ? requestBody : null,
      dispatcher: agent,
    });
    const body = Buffer.from(await upstream.body.arrayBuffer());
    const respHeaders: Record<string, string> = {};
    for (const [k, v] of Object.entries(upstream.headers)) {
      if (typeof v === 'string' && !['content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(k)) {
        respHeaders[k] = v;
      }
    }
    const ex: Exchange = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      requestContentType: headers['content-type'] ?? '',
      requestBody,
      status: upstream.statusCode,
      contentType: String(upstream.headers['content-type'] ?? ''),
      headers: respHeaders,
      body,
    };
    const out = rewrite?.(ex) ?? null;
    if (out !== null) rewritten += 1;
    const outBody = out === null ? body : Buffer.from(out.body);
    res.writeHead(out?.status ?? ex.status, {
      ...(out?.headers ?? respHeaders),
      'content-type': out?.contentType ?? ex.contentType,
      'content-length': String(outBody.length),
    });
    res.end(outBody);
  };

  const server: Server = createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    handle(req, res).catch(() => {
      res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}/`,
    setRewrite(r) {
      rewrite = r;
    },
    get rewritten() {
      return rewritten;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await agent.close();
    },
  };
}

// ---- the download response, taken apart and put back together (possibly wrongly) ----

/** A download response split into its lines: the meta object and each document's info object and content. */
export interface SyncGetParts {
  meta: Record<string, unknown>;
  entries: Array<{ info: Record<string, unknown>; content: string }>;
}

/** Whether an exchange is a sync download (`POST …/sync-from/…` with `x-soledad-sync-get`). */
export function isDownload(ex: Exchange): boolean {
  return ex.method === 'POST' && ex.path.includes('/sync-from/') && ex.requestContentType.startsWith('application/x-soledad-sync-get') &&
    ex.status === 200;
}

/** Whether an exchange is the sync info `GET`. */
export function isSyncInfo(ex: Exchange): boolean {
  return ex.method === 'GET' && ex.path.includes('/sync-from/') && ex.status === 200;
}

/** Whether an exchange is an upload (`POST …` with `x-soledad-sync-put`). */
export function isUpload(ex: Exchange): boolean {
  return ex.method === 'POST' && ex.path.includes('/sync-from/') && ex.requestContentType.startsWith('application/x-soledad-sync-put') &&
    ex.status === 200;
}

/** Split a well-formed download response (§1d). */
export function splitDownload(body: Buffer): SyncGetParts {
  const lines = body.toString('utf8').split('\r\n');
  const strip = (l: string): string => (l.endsWith(',') ? l.slice(0, -1) : l);
  if (lines[0] !== '[') throw new Error('not a download response');
  const meta = JSON.parse(strip(lines[1]!)) as Record<string, unknown>;
  const entries: SyncGetParts['entries'] = [];
  for (let i = 2; i + 1 < lines.length && lines[i] !== ']'; i += 2) {
    entries.push({ info: JSON.parse(strip(lines[i]!)) as Record<string, unknown>, content: strip(lines[i + 1]!) });
  }
  return { meta, entries };
}

/** Put a download response together again, exactly in the server's framing. */
export function joinDownload(parts: SyncGetParts): string {
  let out = `[\r\n${JSON.stringify(parts.meta)}`;
  for (const e of parts.entries) out += `,\r\n${JSON.stringify(e.info)},\r\n${e.content}`;
  return `${out}\r\n]\r\n`;
}

/** The two halves of an encrypted content: base64url preamble and base64url ciphertext‖tag. */
export function rawHalves(content: string): { preamble: string; body: string } {
  const raw = (JSON.parse(content) as { raw: string }).raw;
  const sep = raw.indexOf(' ');
  return { preamble: raw.slice(0, sep), body: raw.slice(sep + 1) };
}

/**
 * An encrypted content made of a preamble and a ciphertext, byte for byte in the client's format (`{"raw": "…"}`
 * with its space: content in any other shape is not taken for ciphertext at all, see the known limits).
 */
export function rawContent(preamble: string, body: string): string {
  return `{"raw": "${preamble} ${body}"}`;
}

/** Flip bits of one base64url character in the middle of the ciphertext (the preamble is left intact). */
export function flipCiphertextBit(content: string): string {
  const { preamble, body } = rawHalves(content);
  const at = Math.floor(body.length / 2);
  const c = body[at]!;
  return rawContent(preamble, body.slice(0, at) + (c === 'A' ? 'B' : 'A') + body.slice(at + 1));
}
