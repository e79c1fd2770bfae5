// The Storlets API on the Swift proxy: GET, PUT and COPY with `X-Run-Storlet` run the account's
// storlet on the object, everything else passes through. Objects, storlets and dependencies are
// read with the caller's own credentials, so Swift's ACLs decide what a caller may run on what.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { isSandletError, oneLine, SandletError } from '../../errors.js';
import type { Gateway, InvokeResult } from '../../gateway.js';
import { META_PREFIX, metadataFromHeaders, metadataToHeaders } from '../../http/object-metadata.js';
import { statusOf } from '../../http/error-status.js';
import {
  storletInputFromHeaders,
  dependencyInputFromHeaders,
} from '../../cache/swift-metadata.js';
import { validateDependencyRegistration, validateStorletRegistration } from '../../cache/registration.js';
import { endToEnd } from '../hop-by-hop.js';
import type { ProxyMetrics } from '../proxy-metrics.js';
import { getSource, invokeOnPumped, sendOutput, type RawSource } from '../pump-body.js';
import { readSmallBody } from '../small-body.js';
import { clientGone, hasResponseBody, relayResponse, sendStream, sendText } from '../relay.js';
import type { Upstream, UpstreamResponse } from '../upstream.js';
import { GeneratedLog } from './generated-log.js';
import { callerCredentials, type AccountStorlets, type CallerCredentials, type Refusal } from './account-storlets.js';
import { parseStorletRequest, type StorletRequest } from './storlet-request.js';
import { objectPath, parseContainerObject, parseSwiftPath, type ObjectPath } from './swift-path.js';

export interface SwiftDoorOptions {
  gateway: Gateway;
  upstream: Upstream;
  storlets: AccountStorlets;
  storletContainer: string;
  dependencyContainer: string;
  logger: Logger;
  metrics: ProxyMetrics;
  /** Where generated logs are spooled (private, unlinked at once). */
  tmpDir: string;
  /** The account's container for generated logs (Storlets: `storletlog`). */
  logContainer: string;
  /** Size of the input pipe a pumped object goes into (pipe_buffer_bytes). */
  pipeBufferBytes: number;
  /** Hides the node's directories from what a client is told. */
  redact: (text: string) => string;
}

/** An object read for a storlet: from undici, or from node:http when its body may be pumped. */
interface SourceObject {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
  raw?: RawSource;
}

function fromUndici(r: UpstreamResponse): SourceObject {
  return { statusCode: r.statusCode, headers: r.headers, body: r.body };
}

/** What one storlet request carries through its steps. */
interface RunContext {
  target: ObjectPath;
  sr: StorletRequest;
  creds: CallerCredentials;
  log?: GeneratedLog;
}

/** Headers that steer the storlet engine: never forwarded to Swift. */
const STORLET_HEADER = /^x-(run-storlet|storlet-)/;
/** Headers of the source object that do not describe a transformed one. */
const SOURCE_ONLY = new Set(['content-length', 'etag', 'accept-ranges', 'content-range', 'content-encoding', 'x-static-large-object', 'x-object-manifest', 'x-manifest-etag']);

function forwardable(headers: IncomingMessage['headers'], drop: string[] = []): Record<string, string | string[]> {
  const out = endToEnd(headers, drop);
  for (const k of Object.keys(out)) if (STORLET_HEADER.test(k)) delete out[k];
  return out;
}

export class SwiftDoor {
  private readonly o: SwiftDoorOptions;

  constructor(opts: SwiftDoorOptions) {
    this.o = opts;
  }

  /**
   * Serves the request if it is one for the storlet engine; false when it should pass through.
   * Throws SandletError (EBADNAME → 400) for a storlet request it refuses.
   */
  async handle(req: IncomingMessage, res: ServerResponse, pathname: string, query: URLSearchParams): Promise<boolean> {
    const method = req.method ?? 'GET';
    const sr = parseStorletRequest(method, req.headers, query);
    if (!sr) {
      if (method === 'PUT') this.checkRegistration(pathname, req.headers);
      return false;
    }
    const p = parseSwiftPath(pathname);
    if (!p) throw new SandletError('EBADNAME', 'X-Run-Storlet applies to object paths: /v1/<account>/<container>/<object>');
    if (!p.container || !p.object) throw new SandletError('EBADNAME', `X-Run-Storlet applies to objects, not to ${p.container ? 'a container' : 'an account'}`);
    const target: ObjectPath = { version: p.version, account: p.account, container: p.container, object: p.object };
    const creds = callerCredentials(req.headers);
    const started = performance.now();
    let outcome = 'error';
    const ctx: RunContext = { target, sr, creds };
    try {
      if (!['GET', 'PUT', 'COPY'].includes(method)) throw new SandletError('EBADNAME', `X-Run-Storlet runs on GET, PUT and COPY, not on ${method}`);
      const dest = req.headers.destination;
      if (method === 'COPY' && typeof dest !== 'string') throw new SandletError('EBADNAME', 'COPY needs a Destination header: <container>/<object>');
      const copyFrom = method === 'PUT' && req.headers['x-copy-from'] !== undefined ? parseContainerObject(String(req.headers['x-copy-from']), 'X-Copy-From') : undefined;
      const copyTo = method === 'COPY' ? parseContainerObject(dest as string, 'Destination') : undefined;
      if (sr.generateLog) ctx.log = new GeneratedLog(this.o.tmpDir, this.o.logContainer, sr.storlet);
      if (method === 'GET') outcome = await this.get(req, res, ctx);
      else if (copyFrom) outcome = await this.copy(req, res, ctx, { ...target, ...copyFrom }, target);
      else if (method === 'PUT') outcome = await this.put(req, res, ctx);
      else outcome = await this.copy(req, res, ctx, target, { ...target, ...copyTo! });
    } catch (err) {
      await this.saveLog(ctx);
      outcome = this.fail(res, sr.storlet, err, ctx.log);
    } finally {
      ctx.log?.close();
      this.o.metrics.storletRun('swift', outcome, (performance.now() - started) / 1000);
    }
    return true;
  }

  /** Registration headers on a PUT into the storlet or dependency container are checked first. */
  private checkRegistration(pathname: string, headers: IncomingMessage['headers']): void {
    let p;
    try {
      p = parseSwiftPath(pathname);
    } catch {
      return; // not a path sandlet reads storlets from: Swift decides
    }
    if (!p?.object || (p.container !== this.o.storletContainer && p.container !== this.o.dependencyContainer)) return;
    if (headers['x-copy-from'] !== undefined) return; // Swift copies the source's registration along
    const get = (h: string): string | null => {
      const v = headers[h];
      return typeof v === 'string' ? v : null;
    };
    try {
      if (p.container === this.o.storletContainer) validateStorletRegistration(storletInputFromHeaders(p.object, get));
      else validateDependencyRegistration(dependencyInputFromHeaders(p.object, get));
    } catch (err) {
      throw new SandletError('EBADREGISTRATION', `${p.container === this.o.storletContainer ? 'storlet' : 'dependency'} ${p.object}: ${oneLine(err)}`);
    }
  }

  private saveLog(ctx: RunContext): Promise<void> {
    return ctx.log ? ctx.log.save(this.o.upstream, ctx.target.version, ctx.target.account, ctx.creds, this.o.logger) : Promise.resolve();
  }

  private async get(req: IncomingMessage, res: ServerResponse, ctx: RunContext): Promise<string> {
    const { target, sr, creds } = ctx;
    const refusal = await this.o.storlets.authorize(target.account, creds, sr.storlet);
    if (refusal) return this.refuse(res, refusal);
    const gone = clientGone(res);
    const source = await this.readSource(target, forwardable(req.headers), gone.signal);
    if (source.statusCode !== 200) {
      await relaySource(req, res, source);
      return 'source_refused';
    }
    const result = await this.run(ctx, target, source, gone.signal);
    if ('status' in result) return refusedExtra(res, result);
    const headers = this.outputHeaders(result.metadata, source.headers);
    if (ctx.log) headers['x-storlet-generated-log'] = ctx.log.name;
    const outcome = await sendOutput(res, 200, headers, result.body, source.raw?.pumpable === true);
    // Saved once the output is out: the log object is there shortly after the response ends.
    await this.saveLog(ctx);
    return outcome;
  }

  private async put(req: IncomingMessage, res: ServerResponse, ctx: RunContext): Promise<string> {
    const { target, sr, creds } = ctx;
    const refusal = await this.o.storlets.authorize(target.account, creds, sr.storlet);
    if (refusal) return this.refuse(res, refusal);
    const gone = clientGone(res);
    const input = uploadOf(req);
    const inputMetadata = inputMetadataOf(req.headers);
    const result = await this.invoke(ctx, input, inputMetadata, [], gone.signal);
    return this.store(req, res, ctx, target, result, gone.signal);
  }

  private async copy(req: IncomingMessage, res: ServerResponse, ctx: RunContext, from: ObjectPath, to: ObjectPath): Promise<string> {
    const { sr, creds } = ctx;
    const refusal = await this.o.storlets.authorize(to.account, creds, sr.storlet);
    if (refusal) return this.refuse(res, refusal);
    const gone = clientGone(res);
    // The source is read as a GET would be: the caller's credentials, no copy headers.
    const source = fromUndici(await this.readObject(from, forwardable(req.headers, ['x-copy-from', 'destination', 'content-length', 'content-type']), gone.signal));
    if (source.statusCode !== 200) {
      await relaySource(req, res, source);
      return 'source_refused';
    }
    req.resume(); // a copy has no body of its own
    const result = await this.run(ctx, from, source, gone.signal);
    if ('status' in result) return refusedExtra(res, result);
    const out = await this.store(req, res, ctx, to, result, gone.signal, { 'x-copied-from': `${encodeURIComponent(from.container)}/${from.object.split('/').map(encodeURIComponent).join('/')}` });
    return out;
  }

  /** GET of an object with the caller's headers (conditional headers included: Swift checks them). */
  private readObject(p: ObjectPath, headers: Record<string, string | string[]>, signal: AbortSignal): Promise<UpstreamResponse> {
    delete headers['content-length'];
    delete headers['transfer-encoding'];
    return this.o.upstream.request({ method: 'GET', path: objectPath(p), headers, signal });
  }

  /**
   * The object a GET runs the storlet on. From a plain-HTTP Swift it comes through node:http, so
   * that a large body can be pumped into the storlet's input pipe (pump-body.ts).
   */
  private async readSource(p: ObjectPath, headers: Record<string, string | string[]>, signal: AbortSignal): Promise<SourceObject> {
    if (!this.o.upstream.rawGets) return fromUndici(await this.readObject(p, headers, signal));
    delete headers['content-length'];
    delete headers['transfer-encoding'];
    const raw = await getSource(this.o.upstream, objectPath(p), headers, signal);
    return { statusCode: raw.statusCode, headers: raw.headers, body: raw.body, raw };
  }

  /** Runs the storlet on a source object (and the extra resources), or says which extra Swift refused. */
  private async run(ctx: RunContext, target: ObjectPath, source: SourceObject, signal: AbortSignal): Promise<InvokeResult | { status: number; text: string }> {
    const { sr, creds } = ctx;
    const extras: UpstreamResponse[] = [];
    try {
      for (const r of sr.extraResources) {
        const extra = await this.readObject({ ...target, ...r }, { ...creds }, signal);
        extras.push(extra);
        if (extra.statusCode !== 200) {
          discard(source.body);
          for (const e of extras) discard(e.body);
          return { status: extra.statusCode, text: `extra resource ${r.container}/${r.object}: the object store answered ${extra.statusCode}` };
        }
      }
      const meta = inputMetadataOf(source.headers);
      const extraInputs = extras.map((e) => ({ input: e.body, metadata: inputMetadataOf(e.headers) }));
      if (source.raw?.pumpable) {
        return await invokeOnPumped(source.raw, this.o.pipeBufferBytes, this.o.upstream.timeoutMs, signal, (input, s) => this.invoke(ctx, input, meta, extraInputs, s));
      }
      const input = (await readSmallBody(source.body, source.headers)) ?? source.body;
      return await this.invoke(ctx, input, meta, extraInputs, signal);
    } catch (err) {
      discard(source.body);
      for (const e of extras) discard(e.body);
      throw err;
    }
  }

  private invoke(ctx: RunContext, input: Readable | Buffer | { fd: number }, inputMetadata: Record<string, string>, extraInputs: { input: Readable; metadata: Record<string, string> }[], signal: AbortSignal): Promise<InvokeResult> {
    const { sr, creds } = ctx;
    const account = ctx.target.account;
    return this.o.gateway.invoke({
      scope: account,
      storlet: sr.storlet,
      params: sr.params,
      input,
      inputMetadata,
      extraInputs,
      ...(sr.range ? { range: sr.range } : {}),
      catalog: this.o.storlets.catalog(account),
      storeAuth: creds,
      signal,
      ...(ctx.log ? { logFd: ctx.log.fd } : {}),
    });
  }

  /** PUTs the storlet's output to `to`: its metadata over the request's, streamed, Swift's answer relayed. */
  private async store(req: IncomingMessage, res: ServerResponse, ctx: RunContext, to: ObjectPath, result: InvokeResult, signal: AbortSignal, extra: Record<string, string> = {}): Promise<string> {
    const reqHeaders = req.headers;
    let out: Record<string, string>;
    try {
      out = metadataToHeaders(result.metadata);
    } catch (err) {
      result.body.destroy();
      throw err;
    }
    const headers = forwardable(reqHeaders, ['content-length', 'etag', 'x-copy-from', 'destination', 'content-md5']);
    // The storlet's metadata wins over the request's where both name a key.
    for (const k of Object.keys(out)) delete headers[k.toLowerCase()];
    Object.assign(headers, out);
    let up: UpstreamResponse;
    try {
      up = await this.o.upstream.request({ method: 'PUT', path: objectPath(to), headers, body: result.body, signal });
    } catch (err) {
      result.body.destroy();
      // The storlet's failure is what the caller needs to hear; Swift stored nothing (the upload broke off).
      throw result.body.errored ?? err;
    }
    // The log is saved before Swift's answer is relayed: when the caller hears back, it is there.
    await this.saveLog(ctx);
    await relayResponse(req, res, up, ctx.log ? { ...extra, 'x-storlet-generated-log': ctx.log.name } : extra);
    // Swift may answer (a refusal) before it read the whole output: the storlet is not left waiting.
    if (!result.body.readableEnded) result.body.destroy();
    return up.statusCode < 300 ? 'ok' : 'store_refused';
  }

  private outputHeaders(metadata: Record<string, string>, source: UpstreamResponse['headers']): Record<string, string | string[]> {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(endToEnd(source))) {
      if (SOURCE_ONLY.has(k) || k.startsWith(META_PREFIX)) continue;
      headers[k] = v;
    }
    const out = metadataToHeaders(metadata);
    for (const k of Object.keys(out)) delete headers[k.toLowerCase()];
    return Object.assign(headers, out);
  }

  private refuse(res: ServerResponse, r: Refusal): string {
    res.writeHead(r.status, r.headers);
    res.end(r.body);
    return r.status === 404 ? 'not_found' : 'refused';
  }

  /** Answers a failure as Swift would: a status and one plain-text line naming the storlet. */
  private fail(res: ServerResponse, storlet: string, err: unknown, log?: GeneratedLog): string {
    const { status, retryAfter } = statusOf(err);
    const code = isSandletError(err) ? err.code : 'EINTERNAL';
    if (status >= 500) this.o.logger.warn({ storlet, status, code, err: oneLine(err) }, 'storlet request failed');
    if (res.headersSent) {
      res.destroy();
      return 'failed_midstream';
    }
    const message = this.o.redact(oneLine(err));
    const text = status === 400 ? message : `Storlet ${storlet}: ${message}`;
    sendText(res, status, text, { ...(retryAfter !== undefined ? { 'retry-after': String(retryAfter) } : {}), ...(log ? { 'x-storlet-generated-log': log.name } : {}) });
    return code === 'ETIMEDOUT' ? 'timeout' : status === 502 ? 'storlet_error' : status >= 500 ? 'unavailable' : 'client_error';
  }
}

/** Relays an object read that Swift refused (its status, end-to-end headers and body). */
function relaySource(req: IncomingMessage, res: ServerResponse, src: SourceObject): Promise<unknown> {
  const headers = endToEnd(src.headers);
  if (hasResponseBody(req.method, src.statusCode)) return sendStream(res, src.statusCode, headers, src.body);
  discard(src.body);
  res.writeHead(src.statusCode, headers);
  res.end();
  return Promise.resolve();
}

/** Drops an upstream body we will not read (its abort error is expected, not a crash). */
function discard(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}

function refusedExtra(res: ServerResponse, r: { status: number; text: string }): string {
  sendText(res, r.status, r.text);
  return 'source_refused';
}

/** An upload as the storlet's input: an upload that breaks off errors it (never a short object). */
function uploadOf(req: IncomingMessage): Readable {
  req.once('close', () => {
    if (!req.complete) req.destroy(new Error('the client aborted the upload'));
  });
  return req;
}

function inputMetadataOf(headers: IncomingMessage['headers'] | UpstreamResponse['headers']): Record<string, string> {
  const meta = metadataFromHeaders(Object.entries(headers));
  const ct = headers['content-type'];
  if (typeof ct === 'string') meta['Content-Type'] = ct;
  return meta;
}
