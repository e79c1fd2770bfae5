// Puts the front door together from the config: the upstream pool, the Swift storlet API and the
// proxy server on its own listener (`proxy_listen`), apart from sandlet's own API.
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { SandletConfig } from '../config.js';
import { SandletError } from '../errors.js';
import type { Gateway } from '../gateway.js';
import { ProxyMetrics } from './proxy-metrics.js';
import { createProxyServer } from './proxy-server.js';
import { AccessPointRegistry } from './s3/access-points.js';
import { S3Door } from './s3/s3-door.js';
import { S3KeyStore } from './s3/s3-keys.js';
import { upstreamS3Credentials, UpstreamS3 } from './s3/upstream-signer.js';
import { AccountStorlets } from './swift/account-storlets.js';
import { SwiftDoor } from './swift/swift-door.js';
import { Upstream } from './upstream.js';

export interface FrontDoor {
  server: Server;
  /** e.g. `http://127.0.0.1:8081` */
  url: string;
  close(): Promise<void>;
}

export async function startFrontDoor(opts: { gateway: Gateway; config: SandletConfig; registry: Registry; logger: Logger }): Promise<FrontDoor> {
  const { config: c, gateway } = opts;
  if (!c.upstream) throw new SandletError('EBADCONFIG', 'the front door needs an upstream (--upstream URL or config upstream)');
  const logger = opts.logger.child({ component: 'front-door' });
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
  const swift = new SwiftDoor({ gateway, upstream, storlets, storletContainer: c.storlet_container, dependencyContainer: c.storlet_dependency, logger, metrics });
  const accessPoints = new AccessPointRegistry(c.access_points_file);
  const keys = new S3KeyStore(c.s3_keys_file);
  const creds = upstreamS3Credentials(c);
  const s3 = new S3Door({ gateway, upstream: creds ? new UpstreamS3(upstream, creds, c.s3_region) : undefined, accessPoints, keys, region: c.s3_region, ...(c.s3_virtual_host ? { virtualHost: c.s3_virtual_host } : {}), logger, metrics });
  const server = createProxyServer({ upstream, swift, s3, metrics, logger, headersTimeoutMs: c.proxy_header_timeout_ms, idleTimeoutMs: c.proxy_idle_timeout_ms });
  const colon = c.proxy_listen.lastIndexOf(':');
  const host = c.proxy_listen.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(c.proxy_listen.slice(colon + 1));
  server.listen(port, host);
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  } catch (err) {
    accessPoints.close();
    keys.close();
    await upstream.close();
    throw new SandletError('EBADCONFIG', `cannot listen on proxy_listen ${c.proxy_listen}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  logger.info({ url, upstream: upstream.origin }, 'front door listening');
  return {
    server,
    url,
    close: async () => {
      server.close();
      server.closeAllConnections();
      await once(server, 'close').catch(() => {});
      accessPoints.close();
      keys.close();
      await upstream.close();
    },
  };
}
