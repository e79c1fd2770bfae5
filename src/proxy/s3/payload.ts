// An upload's body as the access point reads it: decoded (aws-chunked) and checked against what
// the client signed or declared (x-amz-content-sha256, Content-MD5, x-amz-checksum-*). A body that
// fails a check errors at its end, before any store could commit it; a client that breaks off
// errors it too (never a short object).
import { createHash, type Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { AwsChunkedDecoder } from './aws-chunked.js';
import { createChecksum, isChecksumAlgorithm, type Checksum } from './checksums.js';
import { S3Error } from './s3-errors.js';
import type { Verified } from './sigv4-verify.js';

/** Checks declared digests of a plain (not aws-chunked) body as it streams. */
class DigestCheck extends Transform {
  private readonly checks: { name: string; hash: Hash | Checksum; expected: string; code: 'XAmzContentSHA256Mismatch' | 'BadDigest'; enc: 'hex' | 'base64' }[] = [];

  add(name: string, hash: Hash | Checksum, expected: string, code: 'XAmzContentSHA256Mismatch' | 'BadDigest', enc: 'hex' | 'base64'): void {
    this.checks.push({ name, hash, expected, code, enc });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    for (const c of this.checks) c.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    for (const c of this.checks) {
      const got = 'copy' in c.hash ? c.hash.digest(c.enc) : c.hash.digest();
      if (got !== c.expected) {
        return cb(c.code === 'XAmzContentSHA256Mismatch'
          ? new S3Error('XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.")
          : new S3Error('BadDigest', `The ${c.name} you specified did not match the calculated checksum.`));
      }
    }
    cb();
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

/** The `x-amz-checksum-<algo>` header the client sent with a plain body, if any. */
function checksumHeader(req: IncomingMessage): { name: string; hash: Checksum; expected: string } | undefined {
  for (const [k, v] of Object.entries(req.headers)) {
    if (!k.startsWith('x-amz-checksum-') || typeof v !== 'string' || k === 'x-amz-checksum-type') continue;
    const algo = k.slice('x-amz-checksum-'.length);
    if (!isChecksumAlgorithm(algo)) throw new S3Error('InvalidRequest', `${k} is not a checksum sandlet verifies (x-amz-checksum-crc32, -crc32c, -sha1, -sha256)`);
    return { name: k, hash: createChecksum(algo), expected: v };
  }
  return undefined;
}

/** The body to hand the storlet. Throws an S3Error for headers that cannot be honoured. */
export function verifiedBody(req: IncomingMessage, v: Verified): Readable {
  req.once('close', () => {
    if (!req.complete) req.destroy(new S3Error('IncompleteBody', 'the client broke off the upload'));
  });
  const streaming = v.mode.startsWith('streaming-');
  const encoding = header(req, 'content-encoding');
  const chunkedEncoding = encoding?.split(',').some((e) => e.trim() === 'aws-chunked') ?? false;
  if (streaming && req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) {
    throw new S3Error('MissingContentLength', 'You must provide the Content-Length HTTP header.');
  }
  let out: Transform;
  if (streaming) {
    if (encoding !== undefined && !chunkedEncoding) throw new S3Error('InvalidArgument', 'a streaming upload must say Content-Encoding: aws-chunked');
    const decoded = header(req, 'x-amz-decoded-content-length');
    if (decoded !== undefined && !/^\d+$/.test(decoded)) throw new S3Error('InvalidArgument', 'x-amz-decoded-content-length must be a number');
    const trailer = header(req, 'x-amz-trailer');
    if (v.mode !== 'streaming-signed' && trailer === undefined) throw new S3Error('InvalidRequest', `${v.mode === 'streaming-unsigned-trailer' ? 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' : 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER'} needs an x-amz-trailer header`);
    out = new AwsChunkedDecoder({
      ...(v.mode === 'streaming-unsigned-trailer' ? {} : { signing: { signingKey: v.signingKey, amzDate: v.amzDate, scope: v.scope, seedSignature: v.seedSignature } }),
      ...(trailer !== undefined ? { trailer } : {}),
      ...(decoded !== undefined ? { decodedLength: Number(decoded) } : {}),
    });
  } else {
    const check = new DigestCheck();
    if (v.mode === 'signed') check.add('x-amz-content-sha256', createHash('sha256'), v.payloadHash!, 'XAmzContentSHA256Mismatch', 'hex');
    const md5 = header(req, 'content-md5');
    if (md5 !== undefined) check.add('Content-MD5', createHash('md5'), md5, 'BadDigest', 'base64');
    const sum = checksumHeader(req);
    if (sum) check.add(sum.name, sum.hash, sum.expected, 'BadDigest', 'base64');
    out = check;
  }
  // Either side's error reaches the reader as the body's error (the S3Error that says why).
  pipeline(req, out, () => {});
  return out;
}
