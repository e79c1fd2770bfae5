// The S3 front door: requests whose bucket is an access point's name are served by sandlet —
// GetObject and HeadObject return the storlet's output on the upstream object, ListObjects[V2]
// list the upstream bucket, PutObject and multipart uploads (when the access point allows put)
// store the storlet's output of the upload, DeleteObject (when it allows delete) deletes.
// Clients sign with S3 keys sandlet issued; the upstream is read and written with sandlet's own
// credentials. Every other S3 request passes through unchanged.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import type { Logger } from 'pino';
import { oneLine } from '../../errors.js';
import type { Gateway, InvokeResult } from '../../gateway.js';
import { metadataFromHeaders, metadataToHeaders } from '../../http/object-metadata.js';
import type { ProxyMetrics } from '../proxy-metrics.js';
import { clientGone } from '../relay.js';
import { invokeOnPumped, sendOutput, type RawSource } from '../pump-body.js';
import { readSmallBody } from '../small-body.js';
import type { UpstreamResponse } from '../upstream.js';
import type { AccessPoint, AccessPointRegistry } from './access-points.js';
import { MultipartDoor } from './multipart-door.js';
import { MultipartSpool } from './multipart-spool.js';
import { verifiedBody } from './payload.js';
import { readAtMost } from './read-body.js';
import { requestId, S3Error, sendS3Error, toS3Error } from './s3-errors.js';
import type { S3KeyStore } from './s3-keys.js';
import { ByteSlice, parseRangeHeader, resolveRange } from './s3-range.js';
import { verifySigV4, type Verified } from './sigv4-verify.js';
import type { UpstreamS3 } from './upstream-signer.js';

export interface S3DoorOptions {
  gateway: Gateway;
  /** Undefined when upstream_s3_access_key / secret are not configured. */
  upstream: UpstreamS3 | undefined;
  accessPoints: AccessPointRegistry;
  keys: S3KeyStore;
  region: string;
  /** Size of the input pipe a pumped object goes into (pipe_buffer_bytes, at least 256 KiB). */
  pipeBufferBytes: number;
  /** Base domain of virtual-host requests (`<name>.<virtualHost>`), if configured. */
  virtualHost?: string;
  logger: Logger;
  metrics: ProxyMetrics;
  /** Where and how much multipart uploads spool (config s3_multipart_*). */
  multipart: { dir: string; maxBytes: number; ttlMs: number; keepAliveMs?: number };
}

/** An access point request: the access point and the object key (decoded), if any. */
export interface S3Route {
  ap: AccessPoint;
  key?: string;
}

const CONDITIONAL = ['if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since'];
/** Headers of the upstream object that still describe the transformed one. */
const KEPT_SOURCE_HEADERS = ['last-modified', 'etag', 'cache-control', 'content-disposition', 'content-language', 'expires', 'content-type'];
const LIST_PARAMS = new Set(['list-type', 'prefix', 'delimiter', 'max-keys', 'continuation-token', 'start-after', 'fetch-owner', 'encoding-type', 'marker']);
const RESPONSE_OVERRIDES = ['response-content-type', 'response-content-language', 'response-expires', 'response-cache-control', 'response-content-disposition', 'response-content-encoding'];
/** Presigned-URL parameters and the ones S3 allows on GetObject beside them. */
const OBJECT_QUERY = /^([Xx]-[Aa]mz-[A-Za-z0-9-]+|x-id|partNumber|response-[a-z-]+|uploads|uploadId|max-parts|part-number-marker)$/;
/** How long a CompleteMultipartUpload runs before its 200 and keep-alive spaces start. */
const COMPLETE_KEEPALIVE_MS = 5000;
const AMZ_META = 'x-amz-meta-';
const MAX_KEY_BYTES = 1024;
const MAX_LIST_BYTES = 16 * 1024 * 1024;
/** How long a transformed object's length is remembered (for HEAD, then ranged GETs of it). */
const LENGTH_TTL_MS = 60_000;
const MAX_LENGTHS = 10_000;

/** `x-amz-meta-*` and Content-Type → the storlet's metadata (keys canonical, as the Swift door gives them). */
function inputMetadataOf(headers: IncomingMessage['headers'] | UpstreamResponse['headers']): Record<string, string> {
  const meta = metadataFromHeaders(Object.entries(headers).map(([k, v]) => [k.startsWith(AMZ_META) ? `x-object-meta-${k.slice(AMZ_META.length)}` : '', v] as [string, string | string[] | undefined]));
  const ct = headers['content-type'];
  if (typeof ct === 'string') meta['Content-Type'] = ct;
  return meta;
}

/** The storlet's metadata as S3 headers: `Content-Type` and `x-amz-meta-<key>`. */
function outputHeaders(metadata: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadataToHeaders(metadata))) {
    out[k.startsWith('X-Object-Meta-') ? `${AMZ_META}${k.slice('X-Object-Meta-'.length).toLowerCase()}` : k.toLowerCase()] = v;
  }
  return out;
}

/**
 * Keys are sent upstream with sandlet's own credentials, so none may name another bucket: no `.`
 * or `..` segment (a store or proxy that normalises paths would resolve it), no NUL, S3's length cap.
 */
function checkKey(key: string): void {
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new S3Error('KeyTooLongError', `Your key is too long (at most ${MAX_KEY_BYTES} bytes)`);
  if (key.includes('\0') || key.split('/').some((seg) => seg === '.' || seg === '..')) {
    throw new S3Error('InvalidArgument', 'an access point does not serve keys with "." or ".." segments or NUL characters');
  }
}

function discard(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}

/** An upstream object read: undici's answer, or node:http's when its body may be pumped. */
interface Source {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
  raw?: RawSource;
}

function readBody(up: { body: Readable }, max: number): Promise<Buffer> {
  return readAtMost(up.body, max, () => new S3Error('InternalError', 'the upstream answer is too large'));
}

/** Counts a stream's bytes to its end. */
function countBytes(body: Readable): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    body.on('data', (c: Buffer) => (n += c.length));
    body.once('end', () => resolve(n));
    body.once('error', reject);
  });
}

export class S3Door {
  private readonly o: S3DoorOptions;
  private readonly lengths = new Map<string, { total: number; until: number }>();
  private readonly spool: MultipartSpool;
  private readonly multipart: MultipartDoor;

  /** Starts the multipart spool (its directory, a sweep of expired uploads, the sweep timer). */
  constructor(opts: S3DoorOptions) {
    this.o = opts;
    this.spool = new MultipartSpool({ ...opts.multipart, logger: opts.logger });
    this.spool.start();
    this.multipart = new MultipartDoor({
      spool: this.spool,
      store: (ap, key, input, headers, signal) => this.storeTransformed(ap, key, this.o.upstream!, input, headers, signal),
      keepAliveMs: opts.multipart.keepAliveMs ?? COMPLETE_KEEPALIVE_MS,
      logger: opts.logger,
    });
  }

  close(): void {
    this.spool.close();
  }

  /** The access point this request addresses (virtual-host or path style), or undefined. */
  route(req: IncomingMessage, pathname: string): S3Route | undefined {
    let bucket: string | undefined;
    let rest: string | undefined;
    const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
    const base = this.o.virtualHost?.toLowerCase();
    if (base && host.endsWith(`.${base}`)) {
      bucket = host.slice(0, -base.length - 1);
      rest = pathname.slice(1);
    } else {
      const slash = pathname.indexOf('/', 1);
      bucket = slash < 0 ? pathname.slice(1) : pathname.slice(1, slash);
      rest = slash < 0 ? '' : pathname.slice(slash + 1);
    }
    if (!bucket) return undefined;
    const ap = this.o.accessPoints.get(bucket);
    if (!ap) return undefined;
    let key: string | undefined;
    try {
      key = rest ? decodeURIComponent(rest) : undefined;
    } catch {
      key = rest; // S3 takes the bytes as they are; the signature check decides
    }
    return { ap, ...(key ? { key } : {}) };
  }

  /**
   * Serves the request if its bucket is an access point's name; false when it should pass through.
   * An access points file that cannot be read fails every such request closed (503), never open.
   */
  async handle(req: IncomingMessage, res: ServerResponse, pathname: string, rawQuery: string, query: URLSearchParams): Promise<boolean> {
    let route: S3Route | undefined;
    try {
      route = this.route(req, pathname);
    } catch (err) {
      this.o.logger.warn({ err: oneLine(err) }, 'the access points file cannot be read');
      sendS3Error(res, req.method ?? 'GET', new S3Error('ServiceUnavailable', 'the access points file cannot be read'), pathname, requestId(), { connection: 'close' });
      req.resume();
      return true;
    }
    if (!route) return false;
    await this.serve(req, res, route, pathname, rawQuery, query);
    return true;
  }

  /** Serves an access point request to its end (errors as S3 XML). */
  async serve(req: IncomingMessage, res: ServerResponse, route: S3Route, pathname: string, rawQuery: string, query: URLSearchParams): Promise<void> {
    const reqId = requestId();
    const method = req.method ?? 'GET';
    const started = performance.now();
    let outcome = 'error';
    let storletRun = true;
    let body: Readable | undefined;
    try {
      const v = verifySigV4({ method, rawPath: pathname, rawQuery, headers: req.headersDistinct as Record<string, string[]> }, query, this.o.keys, { region: this.o.region });
      if (!v.key.accessPoints.includes(route.ap.name)) throw new S3Error('AccessDenied', `Access Denied: key ${v.key.id} may not use access point ${route.ap.name}`);
      if (!this.o.upstream) throw new S3Error('ServiceUnavailable', 'sandlet has no upstream S3 credentials (config upstream_s3_access_key and upstream_s3_secret_key)');
      const up = this.o.upstream;
      if (route.key === undefined) {
        storletRun = false; // a listing runs no storlet
        outcome = await this.bucketRequest(req, res, route.ap, up, v, query, reqId);
        return;
      }
      checkKey(route.key);
      for (const k of query.keys()) if (!OBJECT_QUERY.test(k)) throw new S3Error('NotImplemented', `an access point does not serve the ${k.slice(0, 40)} subresource`);
      if (query.has('uploads') || query.has('uploadId')) {
        storletRun = method === 'POST' && query.has('uploadId'); // only Complete runs the storlet
        outcome = await this.multipart.handle(req, res, route.ap, route.key, v, query, pathname, reqId);
      } else if (method === 'GET' || method === 'HEAD') outcome = await this.getObject(req, res, route.ap, route.key, up, query, reqId);
      else if (method === 'PUT') {
        if (!route.ap.on.includes('put')) throw new S3Error('AccessDenied', `Access Denied: access point ${route.ap.name} does not allow PutObject`);
        if (req.headers['x-amz-copy-source'] !== undefined) throw new S3Error('NotImplemented', 'an access point does not serve CopyObject: GET the object and PUT it instead');
        body = verifiedBody(req, v);
        outcome = await this.putObject(req, res, route.ap, route.key, up, body, reqId);
      } else if (method === 'DELETE') {
        storletRun = false;
        outcome = await this.deleteObject(req, res, route.ap, route.key, up, reqId);
      } else throw new S3Error('NotImplemented', `an access point serves GET, HEAD, PUT and DELETE of objects and multipart uploads, not ${method}`);
    } catch (err) {
      // A body that failed its checks is why the storlet's input (and the store) failed.
      const cause = body?.errored instanceof S3Error ? body.errored : err;
      const e = toS3Error(cause);
      if (e.code === 'InternalError' || e.status >= 500) this.o.logger.warn({ accessPoint: route.ap.name, code: e.code, err: oneLine(cause) }, 'S3 access point request failed');
      outcome = e.code === 'StorletFailed' || e.code === 'NoSuchStorlet' ? 'storlet_error' : e.code === 'StorletTimeout' ? 'timeout' : e.status >= 500 ? 'unavailable' : 'client_error';
      if (res.headersSent) outcome = 'failed_midstream';
      // A body left unread: the connection cannot carry another request.
      sendS3Error(res, method, e, pathname, reqId, req.complete ? {} : { connection: 'close' });
      if (!req.complete) req.resume();
    } finally {
      if (storletRun) this.o.metrics.storletRun('s3', outcome, (performance.now() - started) / 1000);
    }
  }

  private async bucketRequest(req: IncomingMessage, res: ServerResponse, ap: AccessPoint, up: UpstreamS3, v: Verified, query: URLSearchParams, reqId: string): Promise<string> {
    const method = req.method ?? 'GET';
    const common = { 'x-amz-request-id': reqId };
    if (method === 'HEAD') {
      const r = await up.request({ method: 'HEAD', bucket: ap.bucket });
      await r.body.dump();
      if (r.statusCode === 404) throw new S3Error('NoSuchBucket', `the bucket ${ap.bucket} of access point ${ap.name} does not exist upstream`);
      if (r.statusCode >= 300) throw this.upstreamError(r.statusCode, '');
      res.writeHead(200, { ...common, 'x-amz-bucket-region': this.o.region });
      res.end();
      return 'ok';
    }
    if (method !== 'GET') throw new S3Error('NotImplemented', `an access point serves GET and HEAD of itself, not ${method}`);
    if (query.has('uploads')) return this.multipart.listUploads(res, ap, v, query, reqId);
    if (query.has('location')) {
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${this.o.region === 'us-east-1' ? '' : this.o.region}</LocationConstraint>`;
      res.writeHead(200, { ...common, 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
      return 'ok';
    }
    const pass: [string, string][] = [];
    for (const [k, v] of query) {
      if (LIST_PARAMS.has(k)) pass.push([k, v]);
      else if (!/^([Xx]-[Aa]mz-[A-Za-z0-9-]+|x-id)$/.test(k)) throw new S3Error('NotImplemented', `an access point does not serve the ${k.slice(0, 40)} subresource`);
    }
    const r = await up.request({ method: 'GET', bucket: ap.bucket, query: pass });
    const xml = (await readBody(r, MAX_LIST_BYTES)).toString('utf8');
    if (r.statusCode !== 200) throw this.upstreamError(r.statusCode, xml);
    // The listing names the access point as its bucket; keys, sizes and ETags are the upstream's.
    const body = xml.replace(/<Name>[^<]*<\/Name>/, `<Name>${ap.name}</Name>`);
    res.writeHead(200, { ...common, 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
    return 'ok';
  }

  /** What to answer when the upstream refused: its S3 code where it names one S3 clients know. */
  private upstreamError(status: number, xml: string): S3Error {
    const code = /<Code>([A-Za-z]+)<\/Code>/.exec(xml)?.[1];
    if (code === 'NoSuchKey') return new S3Error('NoSuchKey', 'The specified key does not exist.');
    if (code === 'NoSuchBucket' || (status === 404 && !code)) return new S3Error('NoSuchBucket', 'The access point\'s upstream bucket does not exist.');
    if (status === 412) return new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
    if (code === 'InvalidRange') return new S3Error('InvalidRange', 'The requested range is not satisfiable');
    if (status === 403 || status === 401) {
      this.o.logger.warn({ status, code }, 'the upstream refused sandlet\'s own S3 credentials');
      return new S3Error('AccessDenied', 'Access Denied: the upstream store refused sandlet\'s credentials');
    }
    return new S3Error(status >= 500 ? 'ServiceUnavailable' : 'InternalError', `the upstream store answered ${status}${code ? ` ${code}` : ''}`);
  }

  /** GETs the upstream object with the client's conditional headers (the upstream checks them). */
  private async readSource(req: IncomingMessage, ap: AccessPoint, key: string, up: UpstreamS3, signal: AbortSignal, extra: Record<string, string> = {}): Promise<Source> {
    const headers: Record<string, string> = { ...extra };
    for (const h of CONDITIONAL) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    if (!up.rawGets) return up.request({ method: 'GET', bucket: ap.bucket, key, headers, signal });
    // Through node:http: a large body can then be pumped into the storlet's input (pump-body.ts).
    const raw = await up.getSource({ bucket: ap.bucket, key, headers, signal });
    return { statusCode: raw.statusCode, headers: raw.headers, body: raw.body, raw };
  }

  /** Runs the access point's storlet on an input. */
  private async invoke(ap: AccessPoint, input: Readable | Buffer | { fd: number }, inputMetadata: Record<string, string>, signal: AbortSignal, range?: { start: number; end: number }): Promise<InvokeResult> {
    return this.o.gateway.invoke({ scope: ap.scope, storlet: ap.storlet, params: ap.params, input, inputMetadata, ...(range ? { range } : {}), signal });
  }

  private async runOn(source: Source, ap: AccessPoint, signal: AbortSignal, range?: { start: number; end: number }): Promise<InvokeResult> {
    try {
      const meta = inputMetadataOf(source.headers);
      if (source.raw?.pumpable) {
        return await invokeOnPumped(source.raw, this.o.pipeBufferBytes, this.o.upstream!.timeoutMs, signal, (input, s) => this.invoke(ap, input, meta, s, range));
      }
      const input = (await readSmallBody(source.body, source.headers)) ?? source.body;
      return await this.invoke(ap, input, meta, signal, range);
    } catch (err) {
      discard(source.body);
      throw err;
    }
  }

  private lengthKey(ap: AccessPoint, key: string, source: Source): string {
    return JSON.stringify([ap.name, ap.created, ap.storlet, ap.params, key, source.headers.etag, source.headers['last-modified']]);
  }

  /** The transformed object's length, if remembered (the upstream version and the access point unchanged). */
  private knownLength(id: string): number | undefined {
    const known = this.lengths.get(id);
    return known && known.until > Date.now() ? known.total : undefined;
  }

  private rememberLength(id: string, total: number): void {
    if (this.lengths.size >= MAX_LENGTHS) this.lengths.delete(this.lengths.keys().next().value!);
    this.lengths.set(id, { total, until: Date.now() + LENGTH_TTL_MS });
  }

  private async getObject(req: IncomingMessage, res: ServerResponse, ap: AccessPoint, key: string, up: UpstreamS3, query: URLSearchParams, reqId: string): Promise<string> {
    const method = req.method ?? 'GET';
    const gone = clientGone(res);
    const rangeHeader = typeof req.headers.range === 'string' ? req.headers.range : undefined;
    let range = parseRangeHeader(rangeHeader);
    const part = query.get('partNumber');
    if (part !== null) {
      if (range) throw new S3Error('InvalidRequest', 'Cannot specify both Range header and partNumber query parameter');
      if (!/^\d{1,5}$/.test(part) || Number(part) < 1 || Number(part) > 10000) throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
      // The transformed object is one part: part 1 is all of it.
      if (Number(part) !== 1) throw new S3Error('InvalidPartNumber', 'The requested partnumber is not satisfiable');
      range = { start: 0 };
    }
    let source = await this.readSource(req, ap, key, up, gone.signal);
    if (source.statusCode === 304) {
      discard(source.body);
      const h: Record<string, string> = { 'x-amz-request-id': reqId };
      for (const k of ['etag', 'last-modified']) if (typeof source.headers[k] === 'string') h[k] = source.headers[k] as string;
      res.writeHead(304, h);
      res.end();
      return 'not_modified';
    }
    if (source.statusCode !== 200) throw this.upstreamError(source.statusCode, (await readBody(source, 64 * 1024)).toString('utf8'));

    const headers: Record<string, string> = { 'x-amz-request-id': reqId, 'accept-ranges': 'bytes' };
    for (const h of KEPT_SOURCE_HEADERS) if (typeof source.headers[h] === 'string') headers[h] = source.headers[h] as string;
    const inputTotal = Number(source.headers['content-length']);
    const etag = source.headers.etag;

    let span: { start: number; end: number; total: number } | undefined;
    let result: InvokeResult | undefined;
    let knownTotal: number | undefined;
    if (range && ap.range === 'storlet') {
      // The storlet honours an input range: it is handed the range and its output is that range.
      const r = resolveRange(range, inputTotal, rangeHeader ?? `partNumber=${part}`);
      span = { ...r, total: inputTotal };
      result = await this.runOn(source, ap, gone.signal, r);
    } else if (range || method === 'HEAD') {
      // The output's length is needed first (Content-Length, Content-Range): remembered, or counted
      // by running the storlet once; then it runs again on the same upstream version to stream.
      const id = this.lengthKey(ap, key, source);
      knownTotal = this.knownLength(id);
      let counted: Record<string, string> | undefined;
      if (knownTotal === undefined) {
        const first = await this.runOn(source, ap, gone.signal);
        knownTotal = await countBytes(first.body);
        counted = first.metadata;
        this.rememberLength(id, knownTotal);
      }
      if (range) {
        const r = resolveRange(range, knownTotal, rangeHeader ?? `partNumber=${part}`);
        span = { ...r, total: knownTotal };
      }
      if (method === 'HEAD' && counted) Object.assign(headers, this.responseHeaders(headers, counted, query));
      else {
        if (counted) {
          source = await this.readSource(req, ap, key, up, gone.signal, typeof etag === 'string' ? { 'if-match': etag } : {});
          if (source.statusCode !== 200) throw this.upstreamError(source.statusCode, (await readBody(source, 64 * 1024)).toString('utf8'));
        }
        result = await this.runOn(source, ap, gone.signal);
      }
    } else {
      knownTotal = this.knownLength(this.lengthKey(ap, key, source));
      result = await this.runOn(source, ap, gone.signal);
    }
    if (result) Object.assign(headers, this.responseHeaders(headers, result.metadata, query));
    if (part !== null) headers['x-amz-mp-parts-count'] = '1';
    let status = 200;
    if (span) {
      status = 206;
      headers['content-range'] = `bytes ${span.start}-${span.end}/${span.total}`;
      headers['content-length'] = String(span.end - span.start + 1);
    } else if (knownTotal !== undefined) headers['content-length'] = String(knownTotal);

    if (method === 'HEAD') {
      if (result) discard(result.body);
      res.writeHead(status, headers);
      res.end();
      return 'ok';
    }
    const out = result!.body;
    const slice = span && ap.range !== 'storlet' ? new ByteSlice(span.start, span.end) : span ? new ByteSlice(0, span.end - span.start, true) : knownTotal !== undefined ? new ByteSlice(0, knownTotal - 1, true) : undefined;
    if (!slice) {
      // The whole output, as it comes: pumped to the client when it can be (pump-body.ts).
      const outcome = await sendOutput(res, status, headers, out, source.raw?.pumpable === true);
      if (outcome === 'failed_midstream' && !gone.signal.aborted) this.o.logger.warn({ accessPoint: ap.name }, 'access point output failed mid-stream');
      return gone.signal.aborted && outcome !== 'ok' ? 'aborted' : outcome;
    }
    res.writeHead(status, headers);
    return new Promise((resolve) => {
      const done = (err: Error | null | undefined): void => {
        if (!err) return resolve('ok');
        // A storlet failing mid-stream (or an output not the length announced) cuts the connection.
        res.destroy();
        if (!gone.signal.aborted) this.o.logger.warn({ accessPoint: ap.name, err: oneLine(err) }, 'access point output failed mid-stream');
        resolve(gone.signal.aborted ? 'aborted' : 'failed_midstream');
      };
      let served = false;
      out.on('error', (e) => {
        if (!served) slice.destroy(e);
      });
      out.pipe(slice);
      // A range of the output, once sent whole, needs no more of it: the storlet is stopped
      // (its task cancelled) instead of running to the end for nothing.
      if (span && ap.range !== 'storlet') {
        slice.once('end', () => {
          served = true;
          out.unpipe(slice);
          out.destroy();
        });
      }
      pipeline(slice, res, done);
    });
  }

  /** Kept source headers, then the storlet's metadata over them, then the client's response-* overrides. */
  private responseHeaders(base: Record<string, string>, metadata: Record<string, string>, query: URLSearchParams): Record<string, string> {
    const headers: Record<string, string> = { ...base };
    Object.assign(headers, outputHeaders(metadata));
    for (const o of RESPONSE_OVERRIDES) {
      const v = query.get(o);
      if (v !== null && !/[\r\n]/.test(v)) headers[o.slice('response-'.length)] = v;
    }
    return headers;
  }

  private async putObject(req: IncomingMessage, res: ServerResponse, ap: AccessPoint, key: string, up: UpstreamS3, body: Readable, reqId: string): Promise<string> {
    const gone = clientGone(res);
    const etag = await this.storeTransformed(ap, key, up, body, req.headers, gone.signal);
    const out: Record<string, string> = { 'x-amz-request-id': reqId, 'content-length': '0' };
    if (etag !== undefined) out.etag = etag;
    res.writeHead(200, out);
    res.end();
    return 'ok';
  }

  /**
   * Runs the storlet on `input` (an upload, or a multipart upload's parts in order) and stores
   * its output at `key` with one upstream PUT; resolves with the stored object's ETag.
   * `inputHeaders`: the upload's Content-Type and x-amz-meta-*, the storlet's input metadata.
   */
  private async storeTransformed(ap: AccessPoint, key: string, up: UpstreamS3, input: Readable, inputHeaders: Record<string, string | string[] | undefined>, clientSignal: AbortSignal): Promise<string | undefined> {
    // An input that fails its checks cancels the storlet at once (it may be waiting for more input).
    const failed = new AbortController();
    input.once('error', (err) => failed.abort(err));
    const signal = AbortSignal.any([clientSignal, failed.signal]);
    const result = await this.invoke(ap, input, inputMetadataOf(inputHeaders), signal);
    let headers: Record<string, string>;
    try {
      headers = outputHeaders(result.metadata);
    } catch (err) {
      discard(result.body);
      throw err;
    }
    const type = inputHeaders['content-type'];
    if (!headers['content-type'] && typeof type === 'string') headers['content-type'] = type;
    let stored: UpstreamResponse;
    try {
      stored = await up.request({ method: 'PUT', bucket: ap.bucket, key, headers, body: result.body, signal });
    } catch (err) {
      discard(result.body);
      throw result.body.errored ?? err;
    }
    const text = (await readBody(stored, 64 * 1024)).toString('utf8');
    if (stored.statusCode >= 300) throw this.upstreamError(stored.statusCode, text);
    return typeof stored.headers.etag === 'string' ? stored.headers.etag : undefined;
  }

  /** DeleteObject, on an access point whose `on` includes delete. S3 answers 204 for a key that was not there. */
  private async deleteObject(req: IncomingMessage, res: ServerResponse, ap: AccessPoint, key: string, up: UpstreamS3, reqId: string): Promise<string> {
    if (!ap.on.includes('delete')) throw new S3Error('AccessDenied', `Access Denied: access point ${ap.name} does not allow DeleteObject`);
    req.resume();
    const r = await up.request({ method: 'DELETE', bucket: ap.bucket, key });
    const text = (await readBody(r, 64 * 1024)).toString('utf8');
    if (r.statusCode >= 300 && !(r.statusCode === 404 && /<Code>NoSuchKey<\/Code>/.test(text))) throw this.upstreamError(r.statusCode, text);
    res.writeHead(204, { 'x-amz-request-id': reqId });
    res.end();
    return 'ok';
  }
}
