/**
 * Authentication and authorization of each request, run as the first hook (before the body is read):
 *
 * 1. the route whitelist: a path/method not listed → 401, even with valid credentials;
 * 2. no `Authorization` header → only `/` and `/robots.txt` on the Users API, anything else 404 (the original's
 *    anonymous resource tree); the Services API has no anonymous resources → 401;
 * 3. a malformed header or a token that does not check → 401 `Unauthorized` (plain text);
 * 4. a `{uuid}` in the path other than the credential's → 403 `{"error":"unauthorized"}` (deviation 1).
 */
import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { ForbiddenError, NotFoundError } from '../../common/errors.js';
import { parseTokenAuthorization } from '../../common/protocol/auth.js';
import type { TokenStore } from '../backends/types.js';
import { AuthenticationFailedError } from '../http.js';
import { checkServiceToken, type ServicesTokens } from './services-tokens.js';
import { ANONYMOUS_PATHS, matchRoute, pathOf, SERVICES_API_ROUTES, USERS_API_ROUTES, type RouteRule } from './whitelist.js';

const principals = new WeakMap<object, string>();

/**
 * The uuid (Users API) or service name (Services API) the request authenticated as; `undefined` for an anonymous
 * request.
 *
 * @example
 * const uuid = authenticatedAs(request);
 */
export function authenticatedAs(request: FastifyRequest): string | undefined {
  return principals.get(request.raw);
}

/** Options of {@link usersAuthHook}. */
export interface UsersAuthOptions {
  /** Where user tokens are checked. */
  readonly tokens: TokenStore;
  /** Whitelist, default {@link USERS_API_ROUTES}. */
  readonly rules?: readonly RouteRule[];
}

/**
 * The Users API hook.
 *
 * @example
 * app.addHook('onRequest', usersAuthHook({ tokens: backend.tokens }));
 */
export function usersAuthHook(options: UsersAuthOptions): onRequestAsyncHookHandler {
  const rules = options.rules ?? USERS_API_ROUTES;
  return async (request) => {
    const path = pathOf(request.url);
    const match = matchRoute(rules, request.method, path);
    if (match === null) throw new AuthenticationFailedError('Route not allowed');
    const header = request.headers.authorization;
    if (header === undefined) {
      if (ANONYMOUS_PATHS.includes(path)) return;
      throw new NotFoundError();
    }
    const creds = parseTokenAuthorization(header);
    if (creds === null) throw new AuthenticationFailedError('Malformed credentials');
    if (!(await options.tokens.check(creds.uuid, creds.token))) throw new AuthenticationFailedError('Invalid credentials');
    if (match.uuid !== undefined && match.uuid !== creds.uuid) {
      throw new ForbiddenError('These credentials may not access another user\'s data');
    }
    principals.set(request.raw, creds.uuid);
  };
}

/** Options of {@link servicesAuthHook}. */
export interface ServicesAuthOptions {
  /** Tokens from the services tokens file. */
  readonly tokens: ServicesTokens;
  /** Whitelist, default {@link SERVICES_API_ROUTES}. */
  readonly rules?: readonly RouteRule[];
}

/**
 * The Services API hook: credentials are `service:token` from the services tokens file.
 *
 * @example
 * services.addHook('onRequest', servicesAuthHook({ tokens }));
 */
export function servicesAuthHook(options: ServicesAuthOptions): onRequestAsyncHookHandler {
  const rules = options.rules ?? SERVICES_API_ROUTES;
  return async (request) => {
    const match = matchRoute(rules, request.method, pathOf(request.url));
    if (match === null) throw new AuthenticationFailedError('Route not allowed');
    const creds = parseTokenAuthorization(request.headers.authorization);
    if (creds === null || !checkServiceToken(options.tokens, creds.uuid, creds.token)) {
      throw new AuthenticationFailedError('Invalid credentials');
    }
    principals.set(request.raw, creds.uuid);
  };
}
