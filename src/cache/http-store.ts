// A storlet store in an object store reached over HTTP (Swift's layout): `GET <base>/<container>/<name>`,
// registration in `X-Object-Meta-Storlet-*` headers, ETag / Content-Length / Last-Modified for freshness.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { SandletError, oneLine } from '../errors.js';
import { validateDependencyName, validateStorletName } from '../names.js';
import {
  validateDependencyRegistration,
  validateStorletRegistration,
  type DependencyRegistration,
  type StorletRegistration,
} from './registration.js';
import type { DeployInput, ItemKind, StoreAuth, StoreItem, StorletStore } from './storlet-store.js';
import {
  SHA256_HEADER,
  dependencyHeaders,
  dependencyInputFromHeaders,
  storletHeaders,
  storletInputFromHeaders,
} from './swift-metadata.js';

export interface HttpStoreOptions {
  /** e.g. `http://swift:8080/v1/AUTH_acct`; containers and names are appended. */
  url: string;
  token?: string;
  storletContainer: string;
  dependencyContainer: string;
  timeoutMs: number;
}

export class HttpStore implements StorletStore {
  readonly description: string;
  private readonly base: string;
  private readonly opts: HttpStoreOptions;

  constructor(opts: HttpStoreOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw new SandletError('EBADCONFIG', `storlet store ${JSON.stringify(opts.url)} is neither "local" nor an http(s) URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new SandletError('EBADCONFIG', `storlet store ${JSON.stringify(opts.url)} must be an http or https URL`);
    }
    this.opts = opts;
    this.base = url.href.replace(/\/+$/, '');
    // Never show credentials that may sit in the URL.
    url.username = '';
    url.password = '';
    this.description = `store ${url.href.replace(/\/+$/, '')}`;
  }

  private url(kind: ItemKind, name: string): string {
    const valid = kind === 'storlet' ? validateStorletName(name) : validateDependencyName(name);
    const container = kind === 'storlet' ? this.opts.storletContainer : this.opts.dependencyContainer;
    return `${this.base}/${encodeURIComponent(container)}/${encodeURIComponent(valid)}`;
  }

  /** `auth`, when given, replaces `token`: the caller's own credentials (the Swift front door). */
  private headers(extra: Record<string, string> = {}, auth?: StoreAuth): Record<string, string> {
    if (auth) return { ...auth, ...extra };
    // X-Auth-Token is what Swift reads (tempauth and Keystone). Not also `Authorization: Bearer`:
    // a real Swift with s3api in its pipeline refuses a request carrying one (403).
    if (!this.opts.token) return extra;
    return { 'x-auth-token': this.opts.token, ...extra };
  }

  private async request(method: string, kind: ItemKind, name: string, init: { body?: Buffer; headers?: Record<string, string>; auth?: StoreAuth | undefined } = {}): Promise<Response> {
    const url = this.url(kind, name);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: this.headers(init.headers, init.auth),
        body: init.body,
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      const why = (err as Error).name === 'TimeoutError' ? `no answer within ${this.opts.timeoutMs} ms` : (cause?.code ?? oneLine(cause ?? err));
      throw new SandletError('ESTORE', `the ${this.description} is unreachable (${method} ${kind} ${name}: ${why})`);
    }
    if (res.status === 404 && method !== 'PUT') {
      await res.body?.cancel();
      throw new SandletError('ENOSTORLET', `${kind} ${name} is not deployed in the ${this.description}`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      const hint = res.status === 401 || res.status === 403 ? ' (check the store token)' : '';
      throw new SandletError('ESTORE', `the ${this.description} answered ${res.status} ${res.statusText} to ${method} ${kind} ${name}${hint}`, { status: res.status });
    }
    return res;
  }

  private item(kind: ItemKind, name: string, res: Response): StoreItem {
    const get = (h: string): string | null => res.headers.get(h);
    const where = `${kind} ${name} in the ${this.description}`;
    const etag = get('etag') ?? '';
    const length = get('content-length');
    const sha = get(SHA256_HEADER)?.toLowerCase();
    if (sha !== undefined && !/^[0-9a-f]{64}$/.test(sha)) {
      throw new SandletError('EBADREGISTRATION', `${where}: ${SHA256_HEADER} ${JSON.stringify(sha)} is not a sha256 hex digest`);
    }
    // A manifest's ETag is not the MD5 of the content it serves.
    const manifest = get('x-static-large-object') !== null || get('x-object-manifest') !== null;
    const md5 = /^"?([0-9a-f]{32})"?$/i.exec(etag)?.[1]?.toLowerCase();
    const expected = {
      ...(sha ? { sha256: sha } : {}),
      ...(md5 && !manifest ? { md5 } : {}),
      ...(length !== null && /^\d+$/.test(length) ? { size: Number(length) } : {}),
    };
    const stamp = [etag, length ?? '', get('last-modified') ?? '', sha ?? ''].join('|');
    try {
      if (kind === 'storlet') return { kind, meta: validateStorletRegistration(storletInputFromHeaders(name, get)), stamp, expected };
      return { kind, meta: validateDependencyRegistration(dependencyInputFromHeaders(name, get)), stamp, expected };
    } catch (err) {
      throw new SandletError('EBADREGISTRATION', `${where}: ${(err as Error).message}`);
    }
  }

  async stat(kind: ItemKind, name: string, auth?: StoreAuth): Promise<StoreItem> {
    return this.item(kind, name, await this.request('HEAD', kind, name, { auth }));
  }

  async open(kind: ItemKind, name: string, auth?: StoreAuth): Promise<{ item: StoreItem; body: Readable }> {
    const res = await this.request('GET', kind, name, { auth });
    let item: StoreItem;
    try {
      item = this.item(kind, name, res);
    } catch (err) {
      await res.body?.cancel();
      throw err;
    }
    if (!res.body) throw new SandletError('ESTORE', `the ${this.description} sent no body for ${kind} ${name}`);
    return { item, body: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>) };
  }

  async deploy(content: Buffer, input: DeployInput): Promise<StorletRegistration | DependencyRegistration> {
    const sha256 = createHash('sha256').update(content).digest('hex');
    const md5 = createHash('md5').update(content).digest('hex');
    const common = { etag: md5, 'content-type': 'application/octet-stream', [SHA256_HEADER]: sha256 };
    const stored = { sha256, size: content.length, deployedAt: new Date().toISOString() };
    if (input.kind === 'storlet') {
      const meta = validateStorletRegistration(input);
      for (const dep of meta.dependencies) {
        await this.request('HEAD', 'dependency', dep).then(
          (res) => res.body?.cancel(),
          (err: unknown) => {
            const missing = err instanceof SandletError && err.code === 'ENOSTORLET';
            if (!missing) throw err;
            throw new SandletError('EBADREGISTRATION', `registration: dependency: ${JSON.stringify(dep)} is not deployed in the ${this.description}; deploy it first with \`sandlet deploy FILE --dependency-file\``);
          },
        );
      }
      await this.put('storlet', meta.name, content, { ...common, ...storletHeaders(meta) });
      return { ...meta, ...stored };
    }
    const meta = validateDependencyRegistration(input);
    await this.put('dependency', meta.name, content, { ...common, ...dependencyHeaders(meta) });
    return { ...meta, ...stored };
  }

  private async put(kind: ItemKind, name: string, body: Buffer, headers: Record<string, string>): Promise<void> {
    try {
      const res = await this.request('PUT', kind, name, { body, headers });
      await res.body?.cancel();
    } catch (err) {
      // Swift answers 404 to a PUT into a container that does not exist yet: create it, once.
      if (!(err instanceof SandletError && err.status === 404)) throw err;
      await this.createContainer(kind);
      const res = await this.request('PUT', kind, name, { body, headers });
      await res.body?.cancel();
    }
  }

  private async createContainer(kind: ItemKind): Promise<void> {
    const container = kind === 'storlet' ? this.opts.storletContainer : this.opts.dependencyContainer;
    let res: Response;
    try {
      res = await fetch(`${this.base}/${encodeURIComponent(container)}`, { method: 'PUT', headers: this.headers(), signal: AbortSignal.timeout(this.opts.timeoutMs) });
    } catch (err) {
      throw new SandletError('ESTORE', `the ${this.description} is unreachable (PUT container ${container}: ${oneLine(err)})`);
    }
    await res.body?.cancel();
    if (!res.ok) throw new SandletError('ESTORE', `the ${this.description} answered ${res.status} ${res.statusText} to PUT container ${container}`);
  }
}
