// Requests to the upstream S3 store, signed with sandlet's own credentials (config
// upstream_s3_access_key / upstream_s3_secret_key), never a client's. Signing is
// @smithy/signature-v4's, the AWS SDK's own signer; bodies are sent as UNSIGNED-PAYLOAD so
// they stream without being read twice.
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { SandletConfig } from '../../config.js';
import { SandletError } from '../../errors.js';
import { uriEncode } from './sigv4.js';
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
  private readonly signer: SignatureV4;
  private readonly host: string;

  constructor(upstream: Upstream, creds: { accessKeyId: string; secretAccessKey: string }, region: string) {
    this.upstream = upstream;
    this.host = new URL(upstream.origin).host;
    this.signer = new SignatureV4({ credentials: creds, region, service: 's3', sha256: Hash.bind(null, 'sha256'), uriEscapePath: false });
  }

  async request(r: UpstreamS3Request): Promise<UpstreamResponse> {
    const { path, headers } = await this.sign(r);
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
    const { path, headers } = await this.sign({ ...r, method: 'GET' });
    return getSource(this.upstream, path, headers, r.signal);
  }

  private async sign(r: UpstreamS3Request): Promise<{ path: string; headers: Record<string, string> }> {
    // Path-style, each key segment encoded as S3 canonicalises it (the signer must see the same path).
    const path = `/${uriEncode(r.bucket, false)}${r.key !== undefined ? `/${uriEncode(r.key, true)}` : ''}`;
    const query: Record<string, string> = {};
    for (const [k, v] of r.query ?? []) query[k] = v;
    const request = new HttpRequest({
      method: r.method,
      protocol: 'http:',
      hostname: this.host,
      path: this.upstream.prefix + path,
      query,
      headers: { ...r.headers, host: this.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
    });
    const signed = await this.signer.sign(request);
    const qs = (r.query ?? []).map(([k, v]) => `${uriEncode(k, false)}=${uriEncode(v, false)}`).join('&');
    return { path: qs ? `${path}?${qs}` : path, headers: signed.headers };
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
