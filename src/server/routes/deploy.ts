// PUT /v1/storlets/{name} and /v1/dependencies/{name}: the body is the file, the registration is
// in X-Object-Meta-Storlet-* headers, exactly as Swift stores it.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { dependencyInputFromHeaders, storletInputFromHeaders } from '../../cache/swift-metadata.js';
import type { ServerContext } from '../context.js';
import { RequestError } from '../http-errors.js';

const MAX_DEPLOY_BYTES = 64 * 1024 * 1024;

async function readBody(req: FastifyRequest): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req.raw as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_DEPLOY_BYTES) throw new RequestError(413, 'ETOOLARGE', `a storlet or dependency may be at most ${MAX_DEPLOY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function header(req: FastifyRequest): (name: string) => string | null {
  return (name) => {
    const v = req.headers[name];
    return typeof v === 'string' ? v : null;
  };
}

export function registerDeploy(app: FastifyInstance, ctx: ServerContext): void {
  app.put<{ Params: { name: string } }>('/v1/storlets/:name', { config: { action: 'deploy' } }, async (req, reply) => {
    const content = await readBody(req);
    const reg = await ctx.gateway.deploy(content, { kind: 'storlet', ...storletInputFromHeaders(req.params.name, header(req)) });
    ctx.logger.info({ storlet: reg.name, sha256: reg.sha256, by: req.principal?.id }, 'storlet deployed');
    return reply.code(201).send(reg);
  });

  app.put<{ Params: { name: string } }>('/v1/dependencies/:name', { config: { action: 'deploy' } }, async (req, reply) => {
    const content = await readBody(req);
    const reg = await ctx.gateway.deploy(content, { kind: 'dependency', ...dependencyInputFromHeaders(req.params.name, header(req)) });
    ctx.logger.info({ dependency: reg.name, sha256: reg.sha256, by: req.principal?.id }, 'dependency deployed');
    return reply.code(201).send(reg);
  });
}
