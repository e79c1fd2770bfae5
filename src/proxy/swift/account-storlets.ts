// Storlets as Swift holds them: in each account's `storlet` and `dependency` containers, read with
// the caller's own credentials. A caller runs a storlet only after Swift let that caller HEAD it
// (and each dependency); the answer is remembered for that same token for at most `cache_ttl`.
// Content then goes through the node's verified cache, shared by digest across accounts.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { StorletCatalog } from '../../cache/catalog.js';
import { HttpStore } from '../../cache/http-store.js';
import type { Gateway } from '../../gateway.js';
import { validateDependencyName } from '../../names.js';
import type { Upstream, UpstreamResponse } from '../upstream.js';
import { containerPath } from './swift-path.js';

/** The headers that carry a caller's credentials to Swift (tempauth, Keystone, service tokens). */
const CREDENTIAL_HEADERS = ['x-auth-token', 'x-storage-token', 'x-service-token', 'authorization'] as const;
const MAX_GRANTS = 10_000;
const MAX_ACCOUNTS = 1_000;

export type CallerCredentials = Record<string, string>;

export function callerCredentials(headers: IncomingHttpHeaders): CallerCredentials {
  const out: CallerCredentials = {};
  for (const h of CREDENTIAL_HEADERS) {
    const v = headers[h];
    if (typeof v === 'string') out[h] = v;
  }
  return out;
}

/** Swift refused the caller (or the item is missing): relay its answer as it is. */
export interface Refusal {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
  what: string;
}

export interface AccountStorletsOptions {
  gateway: Gateway;
  upstream: Upstream;
  /** e.g. `v1`, for the storage paths. */
  version?: string;
  storletContainer: string;
  dependencyContainer: string;
  ttlMs: number;
  timeoutMs: number;
  logger: Logger;
  now?: () => number;
}

export class AccountStorlets {
  private readonly opts: AccountStorletsOptions;
  private readonly catalogs = new Map<string, StorletCatalog>();
  /** sha256(credentials)|account|kind|name → until when Swift's yes holds. */
  private readonly grants = new Map<string, number>();
  private readonly now: () => number;

  constructor(opts: AccountStorletsOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Checks with Swift that the caller may read the storlet and each of its dependencies. Undefined
   * when it may; else Swift's own answer to relay (401, 403, 404, ...).
   */
  async authorize(account: string, creds: CallerCredentials, storlet: string): Promise<Refusal | undefined> {
    const id = createHash('sha256').update(JSON.stringify(creds)).digest('hex');
    const first = await this.check(id, account, creds, 'storlet', storlet);
    if (!('dependencies' in first)) return first;
    for (const dep of first.dependencies) {
      const r = await this.check(id, account, creds, 'dependency', validateDependencyName(dep));
      if (!('dependencies' in r)) return r;
    }
    return undefined;
  }

  private async check(id: string, account: string, creds: CallerCredentials, kind: 'storlet' | 'dependency', name: string): Promise<Refusal | { dependencies: string[] }> {
    const key = `${id}|${account}|${kind}|${name}`;
    const until = this.grants.get(key);
    const deps = this.dependencyHint.get(`${account}|${name}`);
    if (until !== undefined && until > this.now() && (kind === 'dependency' || deps)) return { dependencies: kind === 'storlet' ? deps! : [] };
    const container = kind === 'storlet' ? this.opts.storletContainer : this.opts.dependencyContainer;
    const path = `${containerPath(this.opts.version ?? 'v1', account, container)}/${encodeURIComponent(name)}`;
    let res: UpstreamResponse;
    try {
      res = await this.opts.upstream.request({ method: 'HEAD', path, headers: creds, signal: AbortSignal.timeout(this.opts.timeoutMs) });
    } catch (err) {
      return { status: 503, headers: { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '1' }, body: Buffer.from(`the object store did not answer a HEAD of ${kind} ${name}\n`), what: `${kind} ${name}: ${(err as Error).message}` };
    }
    await res.body.dump();
    if (res.statusCode < 200 || res.statusCode > 299) {
      const body = res.statusCode === 404 ? `${kind === 'storlet' ? 'Storlet' : 'Dependency'} ${name} is not deployed in account ${account}\n` : '';
      return { status: res.statusCode, headers: relayHeaders(res.headers, body), body: Buffer.from(body), what: `${kind} ${name}` };
    }
    if (this.grants.size >= MAX_GRANTS) this.grants.delete(this.grants.keys().next().value!);
    this.grants.set(key, this.now() + this.opts.ttlMs);
    if (kind === 'dependency') return { dependencies: [] };
    const list = res.headers['x-object-meta-storlet-dependency'];
    const dependencies = typeof list === 'string' ? list.split(',').map((d) => d.trim()).filter(Boolean) : [];
    this.dependencyHint.set(`${account}|${name}`, dependencies);
    return { dependencies };
  }

  /** The storlet's dependency list as its last HEAD gave it, so a remembered grant needs no HEAD. */
  private readonly dependencyHint = new Map<string, string[]>();

  /** The account's catalog: its storlets resolved into the shared cache (read with each call's storeAuth: the caller's credentials). */
  catalog(account: string): StorletCatalog {
    let c = this.catalogs.get(account);
    if (c) {
      // Most recently used last: the oldest account's catalog is the one dropped at the cap.
      this.catalogs.delete(account);
      this.catalogs.set(account, c);
      return c;
    }
    const g = this.opts.gateway;
    const store = new HttpStore({
      url: `${this.opts.upstream.origin}${this.opts.upstream.prefix}${containerPath(this.opts.version ?? 'v1', account, '').replace(/\/$/, '')}`,
      storletContainer: this.opts.storletContainer,
      dependencyContainer: this.opts.dependencyContainer,
      timeoutMs: this.opts.timeoutMs,
    });
    c = new StorletCatalog({
      store,
      cache: g.cache,
      metrics: g.cacheMetrics,
      logger: this.opts.logger,
      ttlMs: this.opts.ttlMs,
      namespace: account,
      onRepaired: (sha) => g.cacheRepaired(sha),
    });
    if (this.catalogs.size >= MAX_ACCOUNTS) this.catalogs.delete(this.catalogs.keys().next().value!);
    this.catalogs.set(account, c);
    return c;
  }
}

/** Headers of an upstream refusal worth relaying (its body is replaced). */
function relayHeaders(headers: UpstreamResponse['headers'], body: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = { 'content-length': String(Buffer.byteLength(body)) };
  if (body) out['content-type'] = 'text/plain; charset=utf-8';
  for (const h of ['www-authenticate', 'x-trans-id', 'x-openstack-request-id']) {
    const v = headers[h];
    if (v !== undefined) out[h] = v;
  }
  return out;
}
