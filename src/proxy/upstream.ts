// The object store behind the proxy: one undici pool to its origin, kept alive and reused.
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { SandletError } from '../errors.js';

export interface UpstreamRequest {
  method: string;
  /** Path and query as the client sent them (already checked), e.g. `/v1/AUTH_a/c/o?x=1`. */
  path: string;
  headers: Record<string, string | string[]>;
  body?: Readable | Buffer | null;
  signal?: AbortSignal;
}

export type UpstreamResponse = Dispatcher.ResponseData;

export interface UpstreamOptions {
  /** Longest wait for the upstream's response headers, and for each body chunk. */
  timeoutMs: number;
  connections?: number;
}

export class Upstream {
  /** e.g. `http://127.0.0.1:8080`, for messages (never holds credentials). */
  readonly origin: string;
  /** Path prefix of the upstream URL, "" for none. */
  readonly prefix: string;
  private readonly pool: Pool;

  constructor(url: string, opts: UpstreamOptions) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new SandletError('EBADCONFIG', `upstream ${JSON.stringify(url.slice(0, 200))} is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new SandletError('EBADCONFIG', `upstream ${u.origin} must be http or https`);
    if (u.username || u.password || u.search || u.hash) throw new SandletError('EBADCONFIG', 'upstream must be a plain http(s)://host:port[/prefix] URL (no credentials, query or fragment)');
    this.origin = u.origin;
    this.prefix = u.pathname.replace(/\/+$/, '');
    this.pool = new Pool(u.origin, {
      connections: opts.connections ?? 128,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      keepAliveTimeout: 4_000,
    });
  }

  request(req: UpstreamRequest): Promise<UpstreamResponse> {
    return this.pool.request({
      method: req.method as Dispatcher.HttpMethod,
      path: this.prefix + req.path,
      headers: req.headers,
      body: req.body ?? null,
      signal: req.signal,
    });
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
