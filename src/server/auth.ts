// Who may do what. Each route names its action; a token's role grants a set of actions, and an
// `invoke` token may be limited to some scopes. 401: no valid token. 403: valid, not allowed.
import type { FastifyRequest } from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import { RequestError } from './http-errors.js';
import { PeerThrottle } from './peer-throttle.js';
import type { Principal, Role, TokenVerifier } from './tokens.js';

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

export class Authorizer {
  private readonly opts: AuthOptions;
  private readonly throttle = new PeerThrottle();

  constructor(opts: AuthOptions) {
    this.opts = opts;
  }

  /** Resolves to the caller's principal, or throws a 401/403 RequestError. */
  async check(req: FastifyRequest, action: Action, scope?: string): Promise<Principal | undefined> {
    if (action === 'public') return undefined;
    const header = req.headers.authorization;
    const unix = req.socket.remoteAddress === undefined;
    let principal: Principal | undefined;
    if (!header && unix && this.opts.trustUnixPeers !== 'none') {
      principal = { id: 'unix-peer', role: this.opts.trustUnixPeers };
    } else {
      const peer = unix ? 'unix' : (req.socket.remoteAddress ?? 'unknown');
      const wait = this.throttle.pending(peer);
      if (wait > 0) await sleep(wait);
      const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
      principal = token ? await this.opts.tokens.verify(token) : undefined;
      if (!principal) {
        const delay = this.throttle.failed(peer);
        if (delay > 0) await sleep(delay);
        throw new RequestError(401, 'EAUTH', header ? 'the bearer token is not valid' : 'a bearer token is required (Authorization: Bearer <token>)');
      }
      this.throttle.succeeded(peer);
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
