// The object store behind the proxy: one undici pool to its origin, kept alive and reused.
import http from 'node:http';
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
  /** Plain-HTTP upstreams only: GETs whose socket the front door may hand to the addon's pump. */
  private readonly agent: http.Agent | undefined;
  private readonly host: string;
  private readonly port: number;
  /** The upstream timeout (upstream_timeout_ms): silence allowed for headers and for each body chunk. */
  readonly timeoutMs: number;

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
    this.host = u.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    this.timeoutMs = opts.timeoutMs;
    // Idle kept-alive sockets go after 4 s (as the pool's): well before Swift drops them (its
    // client_timeout, 60 s), so a GET is never sent on a socket the upstream is closing.
    this.agent = u.protocol === 'http:' ? new http.Agent({ keepAlive: true, maxSockets: opts.connections ?? 128, timeout: 4_000 }) : undefined;
  }

  /** Whether rawGet() is available: the upstream speaks plain HTTP, so its bytes may be moved by fd. */
  get rawGets(): boolean {
    return this.agent !== undefined;
  }

  /**
   * A GET through node:http rather than undici, so the response's socket is reachable (see
   * pump-body.ts). `onResponse` runs synchronously as the headers are parsed. The request times
   * out when the upstream stays silent for the upstream timeout.
   */
  rawGet(path: string, headers: Record<string, string | string[]>, onResponse: (res: http.IncomingMessage) => void): http.ClientRequest {
    if (!this.agent) throw new Error('rawGet needs a plain-HTTP upstream (see rawGets)');
    const req = http.request({ host: this.host, port: this.port, method: 'GET', path: this.prefix + path, headers, agent: this.agent, setHost: false }, onResponse);
    req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
    req.end();
    return req;
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
    this.agent?.destroy();
    return this.pool.destroy();
  }
}
