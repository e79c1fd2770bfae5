// Admin: the S3 door's access points, in the access points file a running front door follows.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createAccessPoint, listAccessPoints, removeAccessPoint } from '../../proxy/s3/access-points.js';
import type { ServerContext } from '../context.js';
import { RequestError } from '../http-errors.js';

const MAX_BODY_BYTES = 64 * 1024;

async function readJson(req: FastifyRequest): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req.raw as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new RequestError(413, 'ETOOLARGE', `an access point is at most ${MAX_BODY_BYTES} bytes of JSON`);
    chunks.push(chunk);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new RequestError(400, 'EBADNAME', 'the body must be JSON: {"bucket", "storlet", "params"?, "scope"?, "on"?, "range"?}');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RequestError(400, 'EBADNAME', 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

export function registerAccessPoints(app: FastifyInstance, ctx: ServerContext): void {
  const file = ctx.config.access_points_file;

  app.get('/v1/access-points', { config: { action: 'deploy' } }, async () => ({ accessPoints: listAccessPoints(file) }));

  app.put<{ Params: { name: string } }>('/v1/access-points/:name', { config: { action: 'deploy' } }, async (req, reply) => {
    const body = await readJson(req);
    const ap = createAccessPoint(file, { ...body, name: req.params.name } as Parameters<typeof createAccessPoint>[1], true);
    ctx.logger.info({ accessPoint: ap.name, bucket: ap.bucket, storlet: ap.storlet, by: req.principal?.id }, 'access point saved');
    return reply.code(201).send(ap);
  });

  app.delete<{ Params: { name: string } }>('/v1/access-points/:name', { config: { action: 'deploy' } }, async (req, reply) => {
    if (!removeAccessPoint(file, req.params.name)) throw new RequestError(404, 'ENOACCESSPOINT', `no access point ${req.params.name}`);
    ctx.logger.info({ accessPoint: req.params.name, by: req.principal?.id }, 'access point removed');
    return reply.code(204).send();
  });
}
