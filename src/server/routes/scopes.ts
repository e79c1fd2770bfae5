// Operators: list and inspect scopes, restart or stop them, stop a daemon, read invocation logs.
import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { validateStorletName } from '../../names.js';
import type { Sandbox } from '../../runtime/sandbox.js';
import type { ServerContext } from '../context.js';
import { RequestError } from '../http-errors.js';
import { followFile, tailLines } from '../log-tail.js';

type ScopeParams = { Params: { scope: string } };

export function describeScope(sb: Sandbox, now = Date.now()): Record<string, unknown> {
  const d = sb.describe();
  const running = d.state === 'running' && d.startedAt !== undefined;
  return {
    scope: d.scope,
    state: d.state,
    image: d.image ?? null,
    id: d.id ?? null,
    startedAt: d.startedAt?.toISOString() ?? null,
    uptimeSeconds: running ? Math.round((now - d.startedAt!.getTime()) / 100) / 10 : 0,
    inFlight: d.inFlight,
    daemons: d.daemons,
    crashes: d.crashes,
    backoffUntil: sb.backoffUntil > now ? new Date(sb.backoffUntil).toISOString() : null,
    restarts: Object.fromEntries(sb.restartCounts),
    recentRestarts: sb.restarts.slice(-10).map((r) => ({ at: r.at.toISOString(), kind: r.kind ?? null, reason: r.reason })),
    lastStop: sb.lastStop ? { at: sb.lastStop.at.toISOString(), reason: sb.lastStop.reason } : null,
    uptimeRatio: sb.availability.uptimeRatio(now),
    meanTimeToRecoverySeconds: sb.availability.meanTimeToRecoverySeconds() ?? null,
  };
}

function known(ctx: ServerContext, scope: string): Sandbox {
  const sb = ctx.gateway.findSandbox(scope);
  if (!sb) throw new RequestError(404, 'ENOSCOPE', `scope ${scope} has no sandbox on this node`);
  return sb;
}

function who(req: { principal?: { id: string } }): string {
  return req.principal ? `token ${req.principal.id}` : 'anonymous';
}

export function registerScopes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/v1/scopes', { config: { action: 'read' } }, async () => {
    const now = Date.now();
    return { scopes: ctx.gateway.scopes().map((sb) => describeScope(sb, now)) };
  });

  app.get<ScopeParams>('/v1/scopes/:scope', { config: { action: 'read' } }, async (req) => describeScope(known(ctx, req.params.scope)));

  app.post<ScopeParams & { Querystring: { reason?: string; when?: string } }>('/v1/scopes/:scope/restart', { config: { action: 'operate' } }, async (req) => {
    const sb = known(ctx, req.params.scope);
    const asked = (req.query.reason ?? '').slice(0, 200).replace(/[\r\n]+/g, ' ');
    const reason = `operator restart by ${who(req)}${asked ? `: ${asked}` : ''}`;
    if (req.query.when !== undefined && req.query.when !== 'idle' && req.query.when !== 'now') {
      throw new RequestError(400, 'EBADNAME', `when must be now or idle, not ${JSON.stringify(req.query.when)}`);
    }
    if (req.query.when === 'idle' && sb.state === 'running') {
      sb.markStale(reason, 'operator');
      ctx.logger.info({ scope: sb.scope, reason }, 'restart scheduled for the next idle moment');
      return { scope: sb.scope, restart: 'at the next idle moment', reason };
    }
    ctx.logger.info({ scope: sb.scope, reason }, 'restarting scope');
    await sb.restart(reason);
    return describeScope(sb);
  });

  app.post<ScopeParams & { Querystring: { reason?: string } }>('/v1/scopes/:scope/stop', { config: { action: 'operate' } }, async (req) => {
    const sb = known(ctx, req.params.scope);
    const asked = (req.query.reason ?? '').slice(0, 200).replace(/[\r\n]+/g, ' ');
    await sb.stop(`operator stop by ${who(req)}${asked ? `: ${asked}` : ''}`);
    return describeScope(sb);
  });

  app.post<{ Params: { scope: string; storlet: string } }>('/v1/scopes/:scope/daemons/:storlet/stop', { config: { action: 'operate' } }, async (req) => {
    const sb = known(ctx, req.params.scope);
    const storlet = validateStorletName(req.params.storlet);
    if (!sb.describe().daemons.includes(storlet)) throw new RequestError(404, 'ENODAEMON', `no daemon of ${storlet} runs in scope ${sb.scope}`);
    await sb.stopDaemon(storlet);
    return { scope: sb.scope, stopped: storlet };
  });

  app.get<{ Params: { scope: string; storlet: string }; Querystring: { tail?: string; follow?: string } }>(
    '/v1/scopes/:scope/logs/:storlet',
    { config: { action: 'read' } },
    async (req, reply) => {
      const file = ctx.gateway.logPath(req.params.scope, req.params.storlet);
      const tail = req.query.tail === undefined ? 100 : Number(req.query.tail);
      if (!Number.isInteger(tail) || tail < 0 || tail > 100_000) throw new RequestError(400, 'EBADNAME', `tail must be a whole number from 0 to 100000, not ${JSON.stringify(req.query.tail)}`);
      const follow = req.query.follow === '1' || req.query.follow === 'true';
      if (!follow && !fs.existsSync(file)) throw new RequestError(404, 'ENOLOG', `no invocation log of ${req.params.storlet} in scope ${req.params.scope} yet`);
      const { text, size } = await tailLines(file, tail);
      if (!follow) return reply.type('text/plain; charset=utf-8').send(text);
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache' });
      reply.raw.write(text);
      followFile(file, size, reply.raw);
      return reply;
    },
  );
}
