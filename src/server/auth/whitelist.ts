/**
 * The route whitelists of Soledad 0.10's `URLMapper` (fact sheet §5a), checked before anything else: a request
 * whose path and method are not listed gets 401, whoever sends it.
 */

/** One whitelisted path pattern and its methods. */
export interface RouteRule {
  /** Short name, for logs and tests. */
  readonly name: string;
  /** Pattern over the raw (still percent-encoded) path, without the query string. */
  readonly pattern: RegExp;
  /** Allowed methods. */
  readonly methods: readonly string[];
  /** Capture group holding a `{uuid}` that must equal the credential's uuid (deviation 1: else 403). */
  readonly uuidGroup?: number;
}

/** A whitelist match. */
export interface RouteMatch {
  /** The matching rule. */
  readonly rule: RouteRule;
  /** The decoded `{uuid}` of the path, when the rule has one. */
  readonly uuid?: string;
}

/** Users API (public, TLS) whitelist. `/quota/{uuid}` is this port's addition (protocol.md). */
export const USERS_API_ROUTES: readonly RouteRule[] = [
  { name: 'info', pattern: /^\/$/, methods: ['GET'] },
  { name: 'robots', pattern: /^\/robots\.txt$/, methods: ['GET'] },
  { name: 'shared-db', pattern: /^\/shared$/, methods: ['GET'] },
  // `{id:.*}` in the original: ids with odd characters reach the route, which answers 400.
  { name: 'shared-doc', pattern: /^\/shared\/doc\/.+$/, methods: ['GET', 'PUT', 'DELETE'] },
  { name: 'sync', pattern: /^\/user-([^/]+)\/sync-from\/[^/]+$/, methods: ['GET', 'PUT', 'POST'], uuidGroup: 1 },
  { name: 'blob', pattern: /^\/blobs\/([^/]+)\/[^/]+$/, methods: ['GET', 'PUT', 'DELETE', 'POST'], uuidGroup: 1 },
  { name: 'blobs', pattern: /^\/blobs\/([^/]+)\/$/, methods: ['GET'], uuidGroup: 1 },
  { name: 'stream', pattern: /^\/stream\/([^/]+)\/$/, methods: ['POST'], uuidGroup: 1 },
  { name: 'incoming', pattern: /^\/incoming\/[^/]+\/[^/]+$/, methods: ['PUT'] },
  { name: 'quota', pattern: /^\/quota\/([^/]+)$/, methods: ['GET'], uuidGroup: 1 },
];

/** Paths an anonymous request (no `Authorization` header) may use on the Users API; others get 404. */
export const ANONYMOUS_PATHS: readonly string[] = ['/', '/robots.txt'];

/** Services API (local) whitelist: only the incoming box's delivery. */
export const SERVICES_API_ROUTES: readonly RouteRule[] = [
  { name: 'incoming', pattern: /^\/incoming\/[^/]+\/[^/]+$/, methods: ['PUT'] },
];

/**
 * The path part of a request URL (no query string, no fragment), still percent-encoded.
 *
 * @example
 * pathOf('/user-a/sync-from/b?x=1'); // '/user-a/sync-from/b'
 */
export function pathOf(url: string): string {
  const q = url.search(/[?#]/);
  return q < 0 ? url : url.slice(0, q);
}

/**
 * Find the rule allowing `method` on `path`, or `null`.
 *
 * @example
 * matchRoute(USERS_API_ROUTES, 'POST', '/user-abc/sync-from/r1'); // { rule: <sync>, uuid: 'abc' }
 */
export function matchRoute(rules: readonly RouteRule[], method: string, path: string): RouteMatch | null {
  for (const rule of rules) {
    if (!rule.methods.includes(method)) continue;
    const m = rule.pattern.exec(path);
    if (m === null) continue;
    if (rule.uuidGroup === undefined) return { rule };
    let uuid: string;
    try {
      uuid = decodeURIComponent(m[rule.uuidGroup]!);
    } catch {
      return null;
    }
    return { rule, uuid };
  }
  return null;
}
