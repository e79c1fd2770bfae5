// `sandlet serve`: the HTTP API over a Unix socket and/or loopback TCP, one fastify app behind both.
import type http from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { SandletConfig } from '../config.js';
import { SandletError, oneLine } from '../errors.js';
import type { Gateway } from '../gateway.js';
import { Authorizer, type Action } from './auth.js';
import { InflightCounter, type ServerContext } from './context.js';
import { RequestError, httpErrorMapper } from './http-errors.js';
import { bindListeners, type Listeners } from './listeners.js';
import { startFrontDoor, type FrontDoor } from '../proxy/front-door.js';
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
  /** Listeners bound earlier (`sandlet serve` binds before it starts the gateway); else bound here. */
  listeners?: Listeners;
  /** The front door's listener, bound earlier (when `upstream` is set); else bound here. */
  frontDoorListeners?: Listeners;
}

export async function startServer(opts: ServerOptions): Promise<SandletServer> {
  const { gateway, config, logger } = opts;
  const listeners = opts.listeners ?? (await bindListeners(config, logger));
  let app: FastifyInstance;
  let tokens: TokenVerifier | undefined;
  let metrics: ServerMetrics;
  let ctx: ServerContext;
  let frontDoor: FrontDoor | undefined;
  try {
    let handler: http.RequestListener | undefined;
    app = Fastify({
      loggerInstance: logger.child({ component: 'http' }) as unknown as FastifyBaseLogger,
      // One log line per invocation is the route's job; tokens never reach a log (headers are not logged).
      logController: new LogController({ disableRequestLogging: true }),
      // The listeners answer malformed requests, header overflows and timeouts themselves, on every server.
      clientErrorHandler: () => {},
      frameworkErrors: (err, _req, reply) => {
        void (reply as FastifyReply).code(400).send({ error: oneLine(err), code: 'EHTTP' });
      },
      serverFactory: (h) => {
        handler = h;
        return listeners.servers[0]!;
      },
    });
    metrics = new ServerMetrics(gateway, listeners.stats);
    const toHttp = httpErrorMapper(config);
    ctx = { gateway, config, metrics, logger, inflight: new InflightCounter(), toHttp };
    tokens = new TokenVerifier(config.tokens_file);
    const auth = new Authorizer({ tokens, trustUnixPeers: config.trust_unix_peers });

    // Bodies are streams the routes read themselves (the object may be any size).
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_req, _payload, done) => done(null));
    app.addHook('onRequest', async (req) => {
      // Routes without an action are operator-only: nothing is public by accident.
      const action = req.routeOptions.config.action ?? 'operate';
      req.principal = await auth.check(req, action, (req.params as { scope?: string } | undefined)?.scope);
    });
    // One error shape everywhere: fastify's own errors (bad URL encoding, …) carry their status; ours map by code.
    app.setErrorHandler((error, _req, reply) => {
      const err = error as Error;
      const fastifyStatus = (err as { statusCode?: number }).statusCode;
      const ours = err instanceof SandletError || err instanceof RequestError;
      const e = !ours && fastifyStatus && fastifyStatus < 500 ? { status: fastifyStatus, body: { error: oneLine(err), code: 'EHTTP' } } : toHttp(err);
      if (e.status === 401) void reply.header('www-authenticate', 'Bearer');
      if ('retryAfter' in e && e.retryAfter !== undefined) void reply.header('retry-after', String(e.retryAfter));
      if (e.status >= 500) logger.warn({ status: e.status, err: oneLine(err) }, 'request failed');
      return reply.code(e.status).send(e.body);
    });
    app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}`, code: 'ENOROUTE' }));

    registerInvoke(app, ctx);
    registerScopes(app, ctx);
    registerDeploy(app, ctx);
    registerHealth(app, ctx);
    registerAccessPoints(app, ctx);
    await app.ready();
    listeners.serve(handler!);
    if (config.upstream) {
      frontDoor = await startFrontDoor({ gateway, config, registry: metrics.registry, logger, inflight: ctx.inflight, ...(opts.frontDoorListeners ? { listeners: opts.frontDoorListeners } : {}) });
    }
  } catch (err) {
    listeners.close();
    opts.frontDoorListeners?.close();
    tokens?.close();
    throw err;
  }
  const addresses = frontDoor ? [...listeners.addresses, `${frontDoor.url} (front door to ${config.upstream})`] : listeners.addresses;
  logger.info({ addresses, tokens_file: config.tokens_file, trust_unix_peers: config.trust_unix_peers }, 'sandlet serve listening');

  let closing: Promise<{ drained: boolean }> | undefined;
  return {
    app,
    metrics,
    addresses,
    close: (o = {}) =>
      (closing ??= (async () => {
        listeners.stopAccepting();
        frontDoor?.stopAccepting();
        const drained = await ctx.inflight.idle(o.drainMs ?? config.drain_timeout_ms);
        if (!drained) logger.warn({ inFlight: ctx.inflight.count }, 'drain deadline passed; closing the remaining connections');
        listeners.closeAllConnections();
        await frontDoor?.close();
        await app.close();
        tokens.close();
        listeners.close();
        // Unset: the gateway's rule (process sandboxes always stop; Docker ones per stop_sandboxes_on_close).
        await gateway.close({ stopSandboxes: o.stopSandboxes });
        logger.info({ drained }, 'sandlet serve stopped');
        return { drained };
      })()),
  };
}
