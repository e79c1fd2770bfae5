// Requests to the upstream S3 store, signed with sandlet's own credentials (config
// upstream_s3_access_key / upstream_s3_secret_key), never a client's, by the same SigV4 rules
// (sigv4.ts) that check the clients' signatures. Bodies are sent as UNSIGNED-PAYLOAD so they
// stream without being read twice.
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { SandletConfig } from '../../config.js';
import { SandletError } from '../../errors.js';
import { signRequest, uriEncode } from './sigv4.js';
import { getSource, type RawSource } from '../pump-body.js';
import type { Upstream, UpstreamResponse } from '../upstream.js';

export interface UpstreamS3Request {
  method: 'GET' | 'HEAD' | 'PUT' | 'DELETE';
  bucket: string;
  /** Object key, or undefined for the bucket itself. */
  key?: string;
  query?: [string, string][];
  headers?: Record<string, string>;
  body?: Readable | null;
  signal?: AbortSignal;
}

export class UpstreamS3 {
  private readonly upstream: Upstream;
  private readonly creds: { accessKeyId: string; secretAccessKey: string };
  private readonly region: string;
  private readonly host: string;

  constructor(upstream: Upstream, creds: { accessKeyId: string; secretAccessKey: string }, region: string) {
    this.upstream = upstream;
    this.creds = creds;
    this.region = region;
    this.host = new URL(upstream.origin).host;
  }

  async request(r: UpstreamS3Request): Promise<UpstreamResponse> {
    const { path, headers } = this.sign(r);
    return this.upstream.request({
      method: r.method,
      path,
      headers,
      body: r.body ?? null,
      ...(r.signal ? { signal: r.signal } : {}),
    });
  }

  /** The upstream timeout (upstream_timeout_ms). */
  get timeoutMs(): number {
    return this.upstream.timeoutMs;
  }

  /** Whether getSource() can give a body the pump may move (a plain-HTTP upstream). */
  get rawGets(): boolean {
    return this.upstream.rawGets;
  }

  /** A signed GetObject whose large body may be pumped into a storlet (pump-body.ts). */
  async getSource(r: Omit<UpstreamS3Request, 'method' | 'body' | 'query' | 'signal'> & { signal: AbortSignal }): Promise<RawSource> {
    const { path, headers } = this.sign({ ...r, method: 'GET' });
    return getSource(this.upstream, path, headers, r.signal);
  }

  private sign(r: UpstreamS3Request): { path: string; headers: Record<string, string> } {
    // Path-style, each key segment encoded as S3 canonicalises it (the signature covers that path).
    const path = `/${uriEncode(r.bucket, false)}${r.key !== undefined ? `/${uriEncode(r.key, true)}` : ''}`;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = v;
    headers.host = this.host;
    const query = r.query ?? [];
    const signed = signRequest({
      method: r.method,
      rawPath: this.upstream.prefix + path,
      query,
      headers,
      payloadHash: 'UNSIGNED-PAYLOAD',
      credentials: this.creds,
      region: this.region,
      service: 's3',
    });
    const qs = query.map(([k, v]) => `${uriEncode(k, false)}=${uriEncode(v, false)}`).join('&');
    return { path: qs ? `${path}?${qs}` : path, headers: signed };
  }
}

/** sandlet's upstream S3 credentials from config (the secret inline, from its file, or from the environment). */
export function upstreamS3Credentials(c: Pick<SandletConfig, 'upstream_s3_access_key' | 'upstream_s3_secret_key' | 'upstream_s3_secret_key_file'>): { accessKeyId: string; secretAccessKey: string } | undefined {
  if (!c.upstream_s3_access_key) return undefined;
  let secret = c.upstream_s3_secret_key;
  if (!secret && c.upstream_s3_secret_key_file) {
    try {
      secret = fs.readFileSync(c.upstream_s3_secret_key_file, 'utf8').trim();
    } catch (err) {
      throw new SandletError('EBADCONFIG', `cannot read upstream_s3_secret_key_file ${c.upstream_s3_secret_key_file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  if (!secret) throw new SandletError('EBADCONFIG', 'upstream_s3_access_key needs upstream_s3_secret_key or upstream_s3_secret_key_file');
  return { accessKeyId: c.upstream_s3_access_key, secretAccessKey: secret };
}
