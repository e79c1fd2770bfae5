// Puts the front door together from the config: the upstream pool, the Swift storlet API and the
// proxy server on its own listener (`proxy_listen`), apart from sandlet's own API.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { parseSize, type SandletConfig } from '../config.js';
import { SandletError } from '../errors.js';
import type { Gateway } from '../gateway.js';
import { ProxyMetrics } from './proxy-metrics.js';
import { proxyHandler } from './proxy-server.js';
import { bindListeners, type Listeners } from '../server/listeners.js';
import { AccessPointRegistry } from './s3/access-points.js';
import { multipartSpoolDir } from './s3/multipart-spool.js';
import { S3Door } from './s3/s3-door.js';
import { S3KeyStore } from './s3/s3-keys.js';
import { upstreamS3Credentials, UpstreamS3 } from './s3/upstream-signer.js';
import { spoolDir } from '../server/multipart.js';
import { hostPathRedactor } from '../http/error-status.js';
import { AccountStorlets } from './swift/account-storlets.js';
import { SwiftDoor } from './swift/swift-door.js';
import { Upstream } from './upstream.js';

export interface FrontDoor {
  listeners: Listeners;
  /** e.g. `http://127.0.0.1:8081` */
  url: string;
  /** Stops accepting new connections; requests in flight go on. */
  stopAccepting(): void;
  close(): Promise<void>;
}

/**
 * Binds the proxy listener (`proxy_listen`) with the same connection bounds as sandlet's API
 * (`max_connections`, `header_timeout_ms`, `body_idle_timeout_ms`). Binding is separate from
 * serving so `sandlet serve` can bind every address before it touches anything.
 */
export function bindFrontDoor(c: SandletConfig, logger?: Logger): Promise<Listeners> {
  if (!c.upstream) throw new SandletError('EBADCONFIG', 'the front door needs an upstream (--upstream URL or config upstream)');
  return bindListeners({ ...c, listen_socket: '', listen_tcp: c.proxy_listen }, logger);
}

export interface FrontDoorOptions {
  gateway: Gateway;
  config: SandletConfig;
  registry: Registry;
  logger: Logger;
  /** Bound earlier by bindFrontDoor(); else bound here. */
  listeners?: Listeners;
  inflight?: { enter(): void; leave(): void };
  /** When a long CompleteMultipartUpload starts its keep-alive 200 (tests shorten it). */
  s3CompleteKeepAliveMs?: number;
}

export async function startFrontDoor(opts: FrontDoorOptions): Promise<FrontDoor> {
  const { config: c, gateway } = opts;
  if (!c.upstream) throw new SandletError('EBADCONFIG', 'the front door needs an upstream (--upstream URL or config upstream)');
  const logger = opts.logger.child({ component: 'front-door' });
  const listeners = opts.listeners ?? (await bindFrontDoor(c, logger));
  const upstream = new Upstream(c.upstream, { timeoutMs: c.upstream_timeout_ms });
  const metrics = new ProxyMetrics(opts.registry);
  const storlets = new AccountStorlets({
    gateway,
    upstream,
    storletContainer: c.storlet_container,
    dependencyContainer: c.storlet_dependency,
    ttlMs: c.cache_ttl * 1000,
    timeoutMs: c.store_timeout_ms,
    logger,
  });
  const swift = new SwiftDoor({
    gateway,
    upstream,
    storlets,
    storletContainer: c.storlet_container,
    dependencyContainer: c.storlet_dependency,
    logContainer: c.storlet_log_container,
    tmpDir: spoolDir(c.host_root),
    // The object's first socket read (≤ 64 KiB) must fit in the input pipe before anyone reads it.
    pipeBufferBytes: Math.max(c.pipe_buffer_bytes, 256 * 1024),
    redact: hostPathRedactor(c),
    logger,
    metrics,
  });
  const creds = upstreamS3Credentials(c);
  const s3 = new S3Door({
    gateway,
    upstream: creds ? new UpstreamS3(upstream, creds, c.s3_region) : undefined,
    accessPoints: new AccessPointRegistry(c.access_points_file),
    keys: new S3KeyStore(c.s3_keys_file),
    region: c.s3_region,
    pipeBufferBytes: Math.max(c.pipe_buffer_bytes, 256 * 1024),
    ...(c.s3_virtual_host ? { virtualHost: c.s3_virtual_host } : {}),
    logger,
    metrics,
    multipart: {
      dir: multipartSpoolDir(c.host_root),
      maxBytes: parseSize(c.s3_multipart_spool_max_bytes),
      ttlMs: c.s3_multipart_ttl * 1000,
      ...(opts.s3CompleteKeepAliveMs !== undefined ? { keepAliveMs: opts.s3CompleteKeepAliveMs } : {}),
    },
  });
  listeners.serve(proxyHandler({ upstream, swift, s3, metrics, logger, ...(opts.inflight ? { inflight: opts.inflight } : {}) }));
  const url = listeners.addresses[0]!;
  logger.info({ url, upstream: upstream.origin }, 'front door listening');
  return {
    listeners,
    url,
    stopAccepting: () => listeners.stopAccepting(),
    close: async () => {
      listeners.close();
      s3.close();
      await upstream.close();
    },
  };
}
