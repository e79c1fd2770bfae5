// `sandlet serve`: the HTTP API over a Unix socket and/or loopback TCP, one fastify app behind both.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { SandletConfig } from '../config.js';
import { SandletError } from '../errors.js';
import type { Gateway } from '../gateway.js';
import { Authorizer, type Action } from './auth.js';
import { InflightCounter, type ServerContext } from './context.js';
import { RequestError, toHttpError } from './http-errors.js';
import { ServerMetrics } from './metrics.js';
import { registerAccessPoints } from './routes/access-points.js';
import { registerDeploy } from './routes/deploy.js';
import { registerHealth } from './routes/health.js';
import { registerInvoke } from './routes/invoke.js';
import { registerScopes } from './routes/scopes.js';
import { TokenVerifier, type Principal } from './tokens.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    action?: Action;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

export interface SandletServer {
  app: FastifyInstance;
  metrics: ServerMetrics;
  /** `unix:/path` and/or `http://host:port`. */
  addresses: string[];
  /** Stops accepting, lets invocations finish within `drainMs`, then closes; sandboxes stay unless asked. */
  close(opts?: { drainMs?: number; stopSandboxes?: boolean }): Promise<{ drained: boolean }>;
}

export interface ServerOptions {
  gateway: Gateway;
  config: SandletConfig;
  logger: Logger;
}

export async function startServer(opts: ServerOptions): Promise<SandletServer> {
  const { gateway, config, logger } = opts;
  const { listen_socket: socketPath, listen_tcp: tcp } = config;
  if (!socketPath && !tcp) throw new SandletError('EBADCONFIG', 'nothing to listen on: set listen_socket and/or listen_tcp');
  let handler: http.RequestListener | undefined;
  const servers: http.Server[] = [];
  const app: FastifyInstance = Fastify({
    loggerInstance: logger.child({ component: 'http' }) as unknown as FastifyBaseLogger,
    // One log line per invocation is the route's job; tokens never reach a log (headers are not logged).
    logController: new LogController({ disableRequestLogging: true }),
    serverFactory: (h) => {
      handler = h;
      const s = http.createServer(h);
      servers.push(s);
      return s;
    },
  });
  const metrics = new ServerMetrics(gateway);
  const ctx: ServerContext = { gateway, config, metrics, logger, inflight: new InflightCounter() };
  const tokens = new TokenVerifier(config.tokens_file);
  const auth = new Authorizer({ tokens, trustUnixPeers: config.trust_unix_peers });

  // Bodies are streams the routes read themselves (the object may be any size).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
  app.addHook('onRequest', async (req) => {
    // Routes without an action are operator-only: nothing is public by accident.
    const action = req.routeOptions.config.action ?? 'operate';
    req.principal = await auth.check(req, action, (req.params as { scope?: string } | undefined)?.scope);
  });
  app.setErrorHandler((error, _req, reply) => {
    const err = error as Error;
    const fastifyStatus = (err as { statusCode?: number }).statusCode;
    // fastify's own errors (bad URL encoding, …) carry their status; ours map by code.
    const ours = err instanceof SandletError || err instanceof RequestError;
    const e: { status: number; body: object; retryAfter?: number } = !ours && fastifyStatus ? { status: fastifyStatus, body: { error: err.message, code: 'EHTTP' } } : toHttpError(err);
    if (e.status === 401) void reply.header('www-authenticate', 'Bearer');
    if (e.retryAfter !== undefined) void reply.header('retry-after', String(e.retryAfter));
    if (e.status >= 500) logger.warn({ status: e.status, err: (e.body as { error: string }).error }, 'request failed');
    return reply.code(e.status).send(e.body);
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}`, code: 'ENOROUTE' }));

  registerInvoke(app, ctx);
  registerScopes(app, ctx);
  registerDeploy(app, ctx);
  registerHealth(app, ctx);
  registerAccessPoints(app, ctx);
  await app.ready();

  const addresses: string[] = [];
  try {
    if (socketPath) {
      await removeStaleSocket(socketPath);
      fs.mkdirSync(socketPath.slice(0, socketPath.lastIndexOf('/')) || '/', { recursive: true });
      await listen(servers[0]!, { path: socketPath });
      fs.chmodSync(socketPath, parseInt(config.listen_socket_mode, 8));
      addresses.push(`unix:${socketPath}`);
    }
    if (tcp) {
      const server = socketPath ? http.createServer(handler!) : servers[0]!;
      if (server !== servers[0]) servers.push(server);
      const at = tcp.lastIndexOf(':');
      const host = tcp.slice(0, at).replace(/^\[|\]$/g, '');
      await listen(server, { host, port: Number(tcp.slice(at + 1)) });
      const addr = server.address() as net.AddressInfo;
      addresses.push(`http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`);
    }
  } catch (err) {
    // A second address that cannot be bound must not leave the first one listening.
    for (const s of servers) if (s.listening) s.close();
    if (addresses.length > 0 && socketPath) fs.rmSync(socketPath, { force: true });
    tokens.close();
    await app.close();
    throw err;
  }
  for (const s of servers) {
    // Invocations may stream for long: no server-side request timeout; keep-alive stays short.
    s.requestTimeout = 0;
    s.keepAliveTimeout = 5000;
  }
  logger.info({ addresses, tokens_file: config.tokens_file, trust_unix_peers: config.trust_unix_peers }, 'sandlet serve listening');

  let closing: Promise<{ drained: boolean }> | undefined;
  return {
    app,
    metrics,
    addresses,
    close: (o = {}) =>
      (closing ??= (async () => {
        for (const s of servers) {
          s.close();
          s.closeIdleConnections();
        }
        const drained = await ctx.inflight.idle(o.drainMs ?? config.drain_timeout_ms);
        if (!drained) logger.warn({ inFlight: ctx.inflight.count }, 'drain deadline passed; closing the remaining connections');
        for (const s of servers) s.closeAllConnections();
        await app.close();
        tokens.close();
        if (socketPath) fs.rmSync(socketPath, { force: true });
        // Unset: the gateway's rule (process sandboxes always stop; Docker ones per stop_sandboxes_on_close).
        await gateway.close({ stopSandboxes: o.stopSandboxes });
        logger.info({ drained }, 'sandlet serve stopped');
        return { drained };
      })()),
  };
}

function listen(server: http.Server, where: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** A socket file nobody answers on is left from a crash; one that answers belongs to a live server. */
async function removeStaleSocket(file: string): Promise<void> {
  if (!fs.existsSync(file)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(file);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new SandletError('EBADCONFIG', `another server already listens on ${file}`);
  fs.rmSync(file, { force: true });
}
