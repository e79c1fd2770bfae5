// Liveness and readiness for orchestrators; metrics for Prometheus.
import type { FastifyInstance } from 'fastify';
import { connectDocker, inspectImage, pingEngine } from '../../runtime/docker-engine.js';
import { oneLine } from '../../errors.js';
import type { ServerContext } from '../context.js';

export function registerHealth(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/healthz', { config: { action: 'public' } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { config: { action: 'public' } }, async (_req, reply) => {
    const checks: Record<string, string> = {};
    let ready = true;
    try {
      await ctx.gateway.ready();
      checks.backend = ctx.gateway.backendName ?? 'none';
    } catch (err) {
      ready = false;
      checks.backend = oneLine(err);
    }
    if (ctx.gateway.backendName === 'docker') {
      const docker = connectDocker(ctx.config.docker_socket);
      try {
        await pingEngine(docker, ctx.config.docker_socket, 2000);
        checks.engine = 'reachable';
        const image = ctx.config.default_container_image_name;
        const found = await inspectImage(docker, image);
        checks.default_image = found ? `${image} present` : `${image} missing (sandlet image build --tag ${image})`;
        if (!found) ready = false;
      } catch (err) {
        ready = false;
        checks.engine = oneLine(err);
      }
    }
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });

  app.get('/metrics', { config: { action: 'read' } }, async (_req, reply) => {
    const text = await ctx.metrics.registry.metrics();
    return reply.type(ctx.metrics.registry.contentType).send(text);
  });
}
