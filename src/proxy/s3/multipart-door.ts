// S3 multipart uploads on an access point that allows put: CreateMultipartUpload,
// UploadPart, CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads.
// Parts are checked as PutObject bodies are (the same verifiedBody) and spooled to disk; Complete
// runs the storlet once over the parts in order and stores its output with ONE upstream PUT, so
// the upstream needs no multipart support and holds the transformed whole.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { oneLine } from '../../errors.js';
import { clientGone } from '../relay.js';
import type { AccessPoint } from './access-points.js';
import { concatParts, MAX_PART_NUMBER, type MultipartSpool, type UploadMeta } from './multipart-spool.js';
import { completeResult, initiateResult, listPartsResult, listUploadsResult, parseCompleteMultipartUpload } from './multipart-xml.js';
import { verifiedBody } from './payload.js';
import { readAtMost } from './read-body.js';
import { errorXml, S3Error, toS3Error, XML_DECLARATION } from './s3-errors.js';
import type { Verified } from './sigv4-verify.js';

/** Stores `input` transformed by the access point's storlet at `key`; resolves with the stored ETag. */
export type StoreTransformed = (ap: AccessPoint, key: string, input: Readable, inputHeaders: Record<string, string | string[] | undefined>, signal: AbortSignal) => Promise<string | undefined>;

export interface MultipartDoorOptions {
  spool: MultipartSpool;
  store: StoreTransformed;
  /** A Complete still running after this long answers 200 at once and sends a space this often until its result. */
  keepAliveMs: number;
  logger: Logger;
}

const MAX_COMPLETE_XML_BYTES = 2 * 1024 * 1024;
const MAX_LIST = 1000;
const AMZ_META = 'x-amz-meta-';

function limit(query: URLSearchParams, name: string): number {
  const v = query.get(name);
  if (v === null) return MAX_LIST;
  if (!/^\d{1,9}$/.test(v)) throw new S3Error('InvalidArgument', `${name} must be a whole number`);
  return Math.min(Number(v), MAX_LIST);
}

/** A Complete's answer: 200 with the XML declaration and spaces once it runs long (as S3 does). */
class KeepAlive {
  started = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly res: ServerResponse, private readonly reqId: string, everyMs: number) {
    this.timer = setInterval(() => this.tick(), everyMs);
  }

  private tick(): void {
    if (this.res.destroyed) return;
    if (!this.started) {
      this.started = true;
      this.res.writeHead(200, { 'content-type': 'application/xml', 'x-amz-request-id': this.reqId });
      this.res.write(XML_DECLARATION);
    }
    this.res.write(' ');
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export class MultipartDoor {
  private readonly o: MultipartDoorOptions;

  constructor(opts: MultipartDoorOptions) {
    this.o = opts;
  }

  /** An object request with `?uploads` or `?uploadId`; resolves with the outcome for metrics. */
  async handle(req: IncomingMessage, res: ServerResponse, ap: AccessPoint, key: string, v: Verified, query: URLSearchParams, resource: string, reqId: string): Promise<string> {
    const method = req.method ?? 'GET';
    if (!ap.on.includes('put')) throw new S3Error('AccessDenied', `Access Denied: access point ${ap.name} does not allow uploads (multipart or PutObject)`);
    if (req.headers['x-amz-copy-source'] !== undefined) throw new S3Error('NotImplemented', 'an access point does not serve UploadPartCopy: upload the part\'s bytes instead');
    const uploadId = query.get('uploadId');
    const { spool } = this.o;
    if (uploadId === null) {
      if (method !== 'POST') throw new S3Error('NotImplemented', `an access point serves POST ?uploads (CreateMultipartUpload), not ${method}`);
      const headers: Record<string, string> = {};
      for (const [k, val] of Object.entries(req.headers)) {
        if ((k === 'content-type' || k.startsWith(AMZ_META)) && typeof val === 'string') headers[k] = val;
      }
      const upload = spool.create({ accessPoint: ap.name, key, keyId: v.key.id, headers });
      req.resume();
      return this.xml(res, reqId, initiateResult(ap.name, upload));
    }
    const upload = spool.open(uploadId, { accessPoint: ap.name, key, keyId: v.key.id });
    if (method === 'PUT') return this.uploadPart(req, res, upload, v, query, reqId);
    if (method === 'POST') return this.complete(req, res, ap, upload, v, resource, reqId);
    if (method === 'DELETE') {
      spool.abort(upload);
      req.resume();
      res.writeHead(204, { 'x-amz-request-id': reqId });
      res.end();
      return 'ok';
    }
    if (method === 'GET') {
      const marker = query.get('part-number-marker') ?? '0';
      if (!/^\d{1,5}$/.test(marker)) throw new S3Error('InvalidArgument', 'part-number-marker must be a part number');
      return this.xml(res, reqId, listPartsResult(ap.name, upload, spool.parts(upload), Number(marker), limit(query, 'max-parts')));
    }
    throw new S3Error('NotImplemented', `an access point does not serve ${method} on an upload`);
  }

  /** ListMultipartUploads (GET on the access point with `?uploads`): the caller's own uploads. */
  listUploads(res: ServerResponse, ap: AccessPoint, v: Verified, query: URLSearchParams, reqId: string): string {
    const q = { prefix: query.get('prefix') ?? '', keyMarker: query.get('key-marker') ?? '', uploadIdMarker: query.get('upload-id-marker') ?? '', maxUploads: limit(query, 'max-uploads') };
    return this.xml(res, reqId, listUploadsResult(ap.name, this.o.spool.list(ap.name, v.key.id), q));
  }

  private xml(res: ServerResponse, reqId: string, body: string): string {
    res.writeHead(200, { 'content-type': 'application/xml', 'x-amz-request-id': reqId, 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
    return 'ok';
  }

  private async uploadPart(req: IncomingMessage, res: ServerResponse, upload: UploadMeta, v: Verified, query: URLSearchParams, reqId: string): Promise<string> {
    const n = query.get('partNumber');
    if (n === null || !/^\d{1,5}$/.test(n) || Number(n) < 1 || Number(n) > MAX_PART_NUMBER) {
      throw new S3Error('InvalidArgument', `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`);
    }
    const declared = req.headers['x-amz-decoded-content-length'] ?? (v.mode.startsWith('streaming-') ? undefined : req.headers['content-length']);
    const length = typeof declared === 'string' && /^\d+$/.test(declared) ? Number(declared) : undefined;
    const body = verifiedBody(req, v);
    try {
      const part = await this.o.spool.writePart(upload, Number(n), body, length);
      res.writeHead(200, { 'x-amz-request-id': reqId, etag: part.etag, 'content-length': '0' });
      res.end();
      return 'ok';
    } catch (err) {
      // The body's own failure (a bad checksum, a cut upload) says why, not the pipe's.
      throw body.errored instanceof S3Error ? body.errored : err;
    }
  }

  private async complete(req: IncomingMessage, res: ServerResponse, ap: AccessPoint, upload: UploadMeta, v: Verified, resource: string, reqId: string): Promise<string> {
    const { spool } = this.o;
    const xml = (await readAtMost(verifiedBody(req, v), MAX_COMPLETE_XML_BYTES, () => new S3Error('MalformedXML', `The XML you provided was larger than ${MAX_COMPLETE_XML_BYTES} bytes`))).toString('utf8');
    const parts = spool.chosenParts(upload, parseCompleteMultipartUpload(xml));
    spool.beginComplete(upload);
    const gone = clientGone(res);
    const alive = new KeepAlive(res, reqId, this.o.keepAliveMs);
    const input = concatParts(parts);
    try {
      const etag = await this.o.store(ap, upload.key, input, upload.headers, gone.signal);
      spool.remove(upload.id);
      alive.stop();
      const host = req.headers.host ?? 'localhost';
      const result = completeResult(`http://${host}${resource}`, ap.name, upload.key, etag ?? '');
      if (alive.started) res.end(result);
      else this.xml(res, reqId, XML_DECLARATION + result);
      return 'ok';
    } catch (err) {
      alive.stop();
      if (!alive.started) throw err;
      // The 200 went out already: the error is its body, as S3 sends it (SDKs read it as an error).
      const e = toS3Error(err);
      this.o.logger.warn({ accessPoint: ap.name, code: e.code, err: oneLine(err) }, 'S3 multipart upload failed to complete');
      res.end(errorXml(e, resource, reqId, false));
      return e.code === 'StorletFailed' ? 'storlet_error' : gone.signal.aborted ? 'aborted' : 'failed_midstream';
    } finally {
      input.destroy();
      spool.endComplete(upload);
    }
  }
}
