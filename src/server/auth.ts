// Who may do what. Each route names its action; a token's role grants a set of actions, and an
// `invoke` token may be limited to some scopes. 401: no valid token. 403: valid, not allowed.
import type { FastifyRequest } from 'fastify';
import { AuthThrottle } from './auth-throttle.js';
import { RequestError } from './http-errors.js';
import { TokenVerifier, type Principal, type Role } from './tokens.js';

export type Action = 'public' | 'invoke' | 'read' | 'operate' | 'deploy';

const GRANTS: Record<Role, readonly Action[]> = {
  invoke: ['invoke'],
  operate: ['invoke', 'read', 'operate'],
  admin: ['invoke', 'read', 'operate', 'deploy'],
};

export interface AuthOptions {
  tokens: TokenVerifier;
  /** Role given to Unix-socket peers that send no token; `none`: they need one too. */
  trustUnixPeers: Role | 'none';
}

/** The token a request carries: `Authorization: Bearer <token>`, or `X-Auth-Token: <token>` (Swift's header). */
export function tokenOf(headers: FastifyRequest['headers']): string | undefined {
  const bearer = headers.authorization;
  if (typeof bearer === 'string' && /^bearer /i.test(bearer)) return bearer.slice(7).trim() || undefined;
  const swift = headers['x-auth-token'];
  return typeof swift === 'string' && swift.trim() ? swift.trim() : undefined;
}

export class Authorizer {
  private readonly opts: AuthOptions;
  readonly throttle = new AuthThrottle();

  constructor(opts: AuthOptions) {
    this.opts = opts;
  }

  /** Resolves to the caller's principal, or throws a 401/403 RequestError. */
  async check(req: FastifyRequest, action: Action, scope?: string): Promise<Principal | undefined> {
    if (action === 'public') return undefined;
    const token = tokenOf(req.headers);
    const sent = token !== undefined || req.headers.authorization !== undefined;
    const unix = req.socket.remoteAddress === undefined;
    let principal: Principal | undefined;
    if (!sent && unix && this.opts.trustUnixPeers !== 'none') {
      principal = { id: 'unix-peer', role: this.opts.trustUnixPeers };
    } else {
      if (!token) throw new RequestError(401, 'EAUTH', sent ? 'the token is not valid' : 'a token is required (Authorization: Bearer <token>, or X-Auth-Token)');
      // A token that verified before passes at once: no guesser's record can hold it up.
      principal = this.opts.tokens.known(token);
      if (!principal) {
        const peer = unix ? 'unix' : (req.socket.remoteAddress ?? 'unknown');
        principal = await this.throttle.attempt(TokenVerifier.idOf(token), peer, () => this.opts.tokens.verify(token));
      }
      if (!principal) throw new RequestError(401, 'EAUTH', 'the token is not valid');
    }
    if (!GRANTS[principal.role].includes(action)) {
      throw new RequestError(403, 'EFORBIDDEN', `a ${principal.role} token may not ${describe(action)}`);
    }
    if (action === 'invoke' && principal.role === 'invoke' && principal.scopes && scope !== undefined && !principal.scopes.includes(scope)) {
      throw new RequestError(403, 'EFORBIDDEN', `this token may not invoke in scope ${scope}`);
    }
    return principal;
  }
}

function describe(action: Action): string {
  return { public: 'do this', invoke: 'invoke storlets', read: 'read operator data', operate: 'operate sandboxes', deploy: 'deploy storlets' }[action];
}
