// POST /v1/invoke/{scope}/{storlet}: the request body is the object, the response body the output.
import fs from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SandletError, oneLine } from '../../errors.js';
import type { ExtraInput, InvocationInput } from '../../invocation/invocation.js';
import { validateScopeName, validateStorletName } from '../../names.js';
import type { ServerContext } from '../context.js';
import { RequestError } from '../http-errors.js';
import type { Outcome } from '../metrics.js';
import { boundaryOf, spoolDir, spoolMultipart } from '../multipart.js';
import { parseByteRange } from '../../http/byte-range.js';
import { metadataFromHeaders, metadataToHeaders } from '../../http/object-metadata.js';
import { readOutputHead, sendWholeHead, SMALL_BODY_BYTES, type OutputHead } from '../../proxy/small-body.js';

const PARAM_PREFIX = 'x-storlet-parameter-';
/** Multipart bodies are spooled to disk: bounded. A single-part body streams and is not. */
const MAX_MULTIPART_BYTES = 8 * 1024 ** 3;

function outcomeOf(status: number): Outcome {
  if (status === 404) return 'not_found';
  if (status === 502) return 'storlet_error';
  if (status === 503) return 'unavailable';
  if (status === 504) return 'timeout';
  if (status >= 400 && status < 500) return 'client_error';
  return 'error';
}

/** Counts bytes as they pass, without copying them. */
function counter(): Transform & { bytes: number } {
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      t.bytes += chunk.length;
      cb(null, chunk);
    },
  }) as Transform & { bytes: number };
  t.bytes = 0;
  return t;
}

/**
 * Params from the query and `X-Storlet-Parameter-<name>` headers. Names are lowercased, from both:
 * header names carry no case (proxies change it), and one rule for both sources keeps a storlet's
 * params the same whichever way they came.
 */
function paramsOf(req: FastifyRequest): Record<string, string> {
  const params: Record<string, string> = {};
  const add = (name: string, value: unknown, what: string): void => {
    const key = name.toLowerCase();
    if (typeof value !== 'string' || key in params) throw new RequestError(400, 'EBADNAME', `parameter ${key} is given more than once (${what})`);
    params[key] = value;
  };
  for (const [k, v] of Object.entries(req.query as Record<string, unknown>)) add(k, v, 'query');
  for (const [k, v] of Object.entries(req.headers)) {
    if (!k.startsWith(PARAM_PREFIX)) continue;
    const name = k.slice(PARAM_PREFIX.length);
    if (!name) throw new RequestError(400, 'EBADNAME', `${PARAM_PREFIX}<name> needs a name`);
    add(name, v, 'header');
  }
  return params;
}


async function readSmall(req: FastifyRequest, length: number): Promise<Buffer> {
  const raw = req.raw;
  const buf = Buffer.allocUnsafe(length);
  let at = 0;
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    if (at + chunk.length > length) throw new RequestError(400, 'EBADNAME', 'the request body is longer than its Content-Length');
    chunk.copy(buf, at);
    at += chunk.length;
  }
  if (at !== length) throw new RequestError(400, 'EBADNAME', 'the request body ended before its Content-Length');
  return buf;
}

/**
 * The request body through a byte counter. An aborted upload errors the counter (the storlet must
 * not see a short object as whole); a storlet that stops reading does not break the connection.
 */
function requestBody(req: FastifyRequest, count: Transform): Readable {
  const raw = req.raw;
  raw.on('error', (err) => count.destroy(err));
  raw.on('close', () => {
    if (!raw.complete) count.destroy(new Error('the client aborted the upload'));
  });
  // The gateway listens for the input's errors only once it pumps it; an upload aborted before
  // (the sandbox still starting) must not be an unhandled 'error' that takes the server down.
  // The client is gone then, and its invocation is aborted through the request's signal.
  count.on('error', () => {});
  return raw.pipe(count);
}

export function registerInvoke(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Params: { scope: string; storlet: string } }>('/v1/invoke/:scope/:storlet', { config: { action: 'invoke' } }, async (req, reply) => {
    const started = performance.now();
    const fds: number[] = [];
    let scope = '-';
    let storlet = '-';
    const bytesIn = counter();
    let bytesOut = 0;
    ctx.metrics.started();
    ctx.inflight.enter();
    let outcome: Outcome = 'error';
    // A client that leaves before its answer is complete cancels the task at once (not at the
    // storlet timeout): its connection closing aborts the invocation.
    const abort = new AbortController();
    const res = reply.raw;
    const onClose = (): void => {
      if (!res.writableFinished) abort.abort(new SandletError('ECANCELLED', 'the client went away'));
    };
    res.once('close', onClose);
    try {
      scope = validateScopeName(req.params.scope);
      storlet = validateStorletName(req.params.storlet);
      const params = paramsOf(req);
      const rangeHeader = req.headers['x-storlet-range'];
      const range = typeof rangeHeader === 'string' ? parseByteRange(rangeHeader, 'X-Storlet-Range') : undefined;
      const headerMeta = metadataFromHeaders(Object.entries(req.headers));
      const boundary = boundaryOf(req.headers['content-type'] ?? '');
      let input: InvocationInput;
      let inputMetadata = headerMeta;
      const extraInputs: ExtraInput[] = [];
      if (boundary) {
        const parts = await spoolMultipart(requestBody(req, bytesIn), boundary, spoolDir(ctx.config.host_root), MAX_MULTIPART_BYTES);
        fds.push(...parts.map((p) => p.fd));
        input = { fd: parts[0]!.fd };
        inputMetadata = { ...headerMeta, ...parts[0]!.metadata };
        for (const p of parts.slice(1)) extraInputs.push({ input: { fd: p.fd }, metadata: p.metadata });
      } else {
        const length = Number(req.headers['content-length'] ?? NaN);
        // A small body is read whole: the gateway then writes it before EXECUTE, saving a pump.
        input = length <= SMALL_BODY_BYTES ? await readSmall(req, length) : requestBody(req, bytesIn);
        if (Buffer.isBuffer(input)) bytesIn.bytes = input.length;
      }
      const result = await ctx.gateway.invoke({ scope, storlet, params, input, inputMetadata, extraInputs, range, signal: abort.signal });
      let headers: Record<string, string>;
      try {
        headers = metadataToHeaders(result.metadata, { defaultContentType: 'application/octet-stream', keepContentTypeMeta: true });
      } catch (err) {
        result.body.destroy();
        throw err;
      }
      // Held until it ends or is under way (small-body.ts): a failure before any byte is an error status.
      const head = await readOutputHead(result.body);
      outcome = await stream(reply, headers, head, result.body, (n) => (bytesOut = n));
      if (outcome === 'failed_midstream') ctx.logger.warn({ scope, storlet, bytes: bytesOut, err: oneLine(result.body.errored) }, 'invocation output failed mid-stream');
    } catch (err) {
      const e = ctx.toHttp(err);
      // The client left (or was closed for stalling): whatever error that caused, it is an abort.
      outcome = abort.signal.aborted || res.destroyed ? 'aborted' : outcomeOf(e.status);
      if (e.status >= 500) ctx.logger.warn({ scope, storlet, status: e.status, err: oneLine(err) }, 'invocation failed');
      if (!reply.sent) {
        if (e.retryAfter !== undefined) void reply.header('retry-after', String(e.retryAfter));
        return reply.code(e.status).send(e.body);
      }
    } finally {
      if (outcome === 'aborted') ctx.logger.debug({ scope, storlet, bytesIn: bytesIn.bytes, bytesOut }, 'the client went away before its answer was complete');
      for (const fd of fds) fs.close(fd, () => {});
      ctx.metrics.finished(scope, storlet, outcome, (performance.now() - started) / 1000, bytesIn.bytes, bytesOut);
      ctx.inflight.leave();
    }
    return reply;
  });
}

/**
 * Sends the output: whole with its length when it ended while held, else its head and then the
 * rest with backpressure. A failure after the headers went out destroys the connection: the client
 * sees a broken response, never a clean short object.
 */
function stream(reply: FastifyReply, headers: Record<string, string>, head: OutputHead, body: Readable, onBytes: (n: number) => void): Promise<Outcome> {
  reply.hijack();
  const res = reply.raw;
  let bytes = head.bytes;
  return new Promise((resolve) => {
    let settled = false;
    const done = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      onBytes(bytes);
      resolve(outcome);
    };
    res.once('finish', () => done('ok'));
    res.once('close', () => {
      if (res.writableFinished) return done('ok');
      if (!head.ended) body.destroy(); // the client went away: stop the storlet's output
      done('aborted');
    });
    if (head.ended) return sendWholeHead(res, 200, headers, head);
    res.writeHead(200, headers);
    for (const c of head.chunks) res.write(c);
    // pipe() plus two listeners: lighter per call than pipeline() with a counting stage.
    body.on('data', (c: Buffer) => (bytes += c.length));
    body.once('error', () => {
      res.destroy();
      done('failed_midstream');
    });
    body.pipe(res);
  });
}
