// S3's error answers: an XML body with a code SDKs turn into a named exception, and the status
// that code carries. A storlet's failures get codes of their own (documented in the README).
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { isSandletError, oneLine } from '../../errors.js';
import { statusOf } from '../../http/error-status.js';

export const S3_STATUS = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidPart: 400,
  InvalidPartNumber: 416,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  KeyTooLongError: 400,
  MalformedXML: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NotImplemented: 501,
  OperationAborted: 409,
  PreconditionFailed: 412,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  XAmzContentSHA256Mismatch: 400,
  /** A storlet failed (or wrote metadata that cannot be a header) before its output began. */
  StorletFailed: 502,
  /** The storlet named by the access point is not deployed. */
  NoSuchStorlet: 502,
  /** The storlet stayed silent longer than storlet_timeout_ms. */
  StorletTimeout: 504,
} as const;

export type S3ErrorCode = keyof typeof S3_STATUS;

export class S3Error extends Error {
  readonly code: S3ErrorCode;
  readonly status: number;
  readonly extra: Record<string, string>;

  constructor(code: S3ErrorCode, message: string, extra: Record<string, string> = {}) {
    super(message);
    this.code = code;
    this.status = S3_STATUS[code];
    this.extra = extra;
    this.name = 'S3Error';
  }
}

export const xmlEscape = (s: string): string => s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);

export function requestId(): string {
  return randomBytes(8).toString('hex').toUpperCase();
}

/** What S3 would answer for an error sandlet met: its own S3Error, or a gateway failure mapped by code. */
export function toS3Error(err: unknown): S3Error {
  if (err instanceof S3Error) return err;
  if (isSandletError(err)) {
    const { status } = statusOf(err);
    if (err.code === 'ENOSTORLET') return new S3Error('NoSuchStorlet', oneLine(err));
    if (err.code === 'ETIMEDOUT') return new S3Error('StorletTimeout', oneLine(err));
    if (status === 400) return new S3Error('InvalidArgument', oneLine(err));
    if (status === 502) return new S3Error('StorletFailed', oneLine(err));
    if (status === 503 || status === 507) return new S3Error('ServiceUnavailable', oneLine(err));
  }
  return new S3Error('InternalError', 'We encountered an internal error. Please try again.');
}

export const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';

/** The error's XML; `declaration: false` when it follows one already sent (a kept-alive 200). */
export function errorXml(err: S3Error, resource: string, reqId: string, declaration = true): string {
  const extra = Object.entries(err.extra).map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`).join('');
  return `${declaration ? XML_DECLARATION : ''}<Error><Code>${err.code}</Code><Message>${xmlEscape(err.message)}</Message>${extra}<Resource>${xmlEscape(resource)}</Resource><RequestId>${reqId}</RequestId></Error>`;
}

/** Sends the error; after the headers went out, cuts the connection instead (never a clean short body). */
export function sendS3Error(res: ServerResponse, method: string, err: S3Error, resource: string, reqId: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorXml(err, resource, reqId);
  res.writeHead(err.status, {
    'content-type': 'application/xml',
    'x-amz-request-id': reqId,
    ...(method === 'HEAD' ? {} : { 'content-length': String(Buffer.byteLength(body)) }),
    ...(err.code === 'ServiceUnavailable' ? { 'retry-after': '1' } : {}),
    ...headers,
  });
  res.end(method === 'HEAD' ? undefined : body);
}
