import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { AwsChunkedDecoder } from '../../../src/proxy/s3/aws-chunked.js';
import { S3Error } from '../../../src/proxy/s3/s3-errors.js';
import type { S3KeyStore } from '../../../src/proxy/s3/s3-keys.js';
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { signingKey, signRequest } from '../../../src/proxy/s3/sigv4.js';
import { verifySigV4 } from '../../../src/proxy/s3/sigv4-verify.js';

// The example values AWS publishes in "Authenticating Requests: Using the Authorization Header
// (AWS Signature Version 4)" for Amazon S3: examplebucket, 2013-05-24, us-east-1.
const KEY_ID = 'AKIAIOSFODNN7EXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const keys = { get: (id: string) => (id === KEY_ID ? { id, secret: SECRET, accessPoints: ['examplebucket'], created: '' } : undefined) } as unknown as S3KeyStore;
const AT = Date.UTC(2013, 4, 24, 0, 0, 0);
const HOST = 'examplebucket.s3.amazonaws.com';
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

function headers(h: Record<string, string>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, [v]]));
}

function auth(signed: string, signature: string): string {
  return `AWS4-HMAC-SHA256 Credential=${KEY_ID}/20130524/us-east-1/s3/aws4_request,SignedHeaders=${signed},Signature=${signature}`;
}

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof S3Error) return err.code;
    throw err;
  }
  return 'no error';
}

describe('SigV4 verification against AWS example values', () => {
  const getObject = (signature: string, extra: Record<string, string> = {}) => ({
    method: 'GET',
    rawPath: '/test.txt',
    rawQuery: '',
    headers: headers({ host: HOST, range: 'bytes=0-9', 'x-amz-content-sha256': EMPTY, 'x-amz-date': '20130524T000000Z', ...extra, authorization: auth('host;range;x-amz-content-sha256;x-amz-date', signature) }),
  });

  it('GET Object (header auth)', () => {
    const v = verifySigV4(getObject('f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41'), new URLSearchParams(), keys, { region: 'us-east-1', now: AT });
    expect(v.key.id).toBe(KEY_ID);
    expect(v.mode).toBe('signed');
  });

  it('refuses a changed signed header, another region, a skewed clock and an unknown key', () => {
    const sig = 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41';
    const opts = { region: 'us-east-1', now: AT };
    expect(errorCode(() => verifySigV4(getObject(sig, { range: 'bytes=0-10' }), new URLSearchParams(), keys, opts))).toBe('SignatureDoesNotMatch');
    expect(errorCode(() => verifySigV4(getObject(sig), new URLSearchParams(), keys, { region: 'eu-west-1', now: AT }))).toBe('AuthorizationHeaderMalformed');
    expect(errorCode(() => verifySigV4(getObject(sig), new URLSearchParams(), keys, { region: 'us-east-1', now: AT + 16 * 60_000 }))).toBe('RequestTimeTooSkewed');
    expect(verifySigV4(getObject(sig), new URLSearchParams(), keys, { region: 'us-east-1', now: AT + 14 * 60_000 }).key.id).toBe(KEY_ID);
    const other = { ...getObject(sig) };
    other.headers = { ...other.headers, authorization: [other.headers.authorization![0]!.replace(KEY_ID, 'AKIDUNKNOWN')] };
    expect(errorCode(() => verifySigV4(other, new URLSearchParams(), keys, opts))).toBe('InvalidAccessKeyId');
    const v2 = { ...getObject(sig), headers: headers({ host: HOST, authorization: `AWS ${KEY_ID}:frJIUN8DYpKDtOLCwo//yllqDzg=` }) };
    expect(errorCode(() => verifySigV4(v2, new URLSearchParams(), keys, opts))).toBe('InvalidRequest');
  });

  it('GET Object with a presigned URL, and its expiry', () => {
    const rawQuery = `X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${KEY_ID}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404`;
    const req = { method: 'GET', rawPath: '/test.txt', rawQuery, headers: headers({ host: HOST }) };
    const q = new URLSearchParams(rawQuery);
    expect(verifySigV4(req, q, keys, { region: 'us-east-1', now: AT + 3600_000 }).mode).toBe('unsigned');
    expect(errorCode(() => verifySigV4(req, q, keys, { region: 'us-east-1', now: AT + 86401_000 }))).toBe('AccessDenied');
  });

  it('PUT Object with STREAMING-AWS4-HMAC-SHA256-PAYLOAD: seed and every chunk signature', async () => {
    const req = {
      method: 'PUT',
      rawPath: '/examplebucket/chunkObject.txt',
      rawQuery: '',
      headers: headers({
        host: 's3.amazonaws.com',
        'x-amz-date': '20130524T000000Z',
        'x-amz-storage-class': 'REDUCED_REDUNDANCY',
        'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
        'content-encoding': 'aws-chunked',
        'x-amz-decoded-content-length': '66560',
        'content-length': '66824',
        authorization: auth('content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class', '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9'),
      }),
    };
    const v = verifySigV4(req, new URLSearchParams(), keys, { region: 'us-east-1', now: AT });
    expect(v.mode).toBe('streaming-signed');
    const body = Buffer.concat([
      Buffer.from('10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n'),
      Buffer.alloc(65536, 'a'),
      Buffer.from('\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n'),
      Buffer.alloc(1024, 'a'),
      Buffer.from('\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n'),
    ]);
    expect(body.length).toBe(66824);
    const decode = (b: Buffer): Promise<Buffer> => {
      const d = new AwsChunkedDecoder({ signing: { signingKey: signingKey(SECRET, '20130524', 'us-east-1', 's3'), amzDate: v.amzDate, scope: v.scope, seedSignature: v.seedSignature }, decodedLength: 66560 });
      // Fed in odd pieces: chunk boundaries must not matter.
      const pieces: Buffer[] = [];
      for (let i = 0; i < b.length; i += 7001) pieces.push(b.subarray(i, i + 7001));
      return buffer(Readable.from(pieces).pipe(d));
    };
    expect((await decode(body)).equals(Buffer.alloc(66560, 'a'))).toBe(true);
    const tampered = Buffer.from(body);
    tampered[70_000 - 4000] = 'b'.charCodeAt(0);
    await expect(decode(tampered)).rejects.toMatchObject({ code: 'SignatureDoesNotMatch' });
    await expect(decode(body.subarray(0, 66000))).rejects.toMatchObject({ code: 'IncompleteBody' });
  });
});

describe('SigV4 signing (sandlet to its upstream)', () => {
  const credentials = { accessKeyId: KEY_ID, secretAccessKey: SECRET };

  it('signs the AWS example GET Object as AWS does, and its own check accepts it', () => {
    const h = signRequest({ method: 'GET', rawPath: '/test.txt', query: [], headers: { host: HOST, range: 'bytes=0-9' }, payloadHash: EMPTY, credentials, region: 'us-east-1', service: 's3', now: new Date(AT) });
    expect(h.authorization).toBe(`AWS4-HMAC-SHA256 Credential=${KEY_ID}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41`);
    expect(verifySigV4({ method: 'GET', rawPath: '/test.txt', rawQuery: '', headers: headers(h) }, new URLSearchParams(), keys, { region: 'us-east-1', now: AT }).key.id).toBe(KEY_ID);
  });

  it('agrees with the AWS SDK signer on a query, an encoded key and hop-by-hop headers left unsigned', async () => {
    const now = new Date(AT + 5000);
    const rawPath = '/examplebucket/a%20b/%C3%A9%2A.txt';
    const query: [string, string][] = [['uploadId', 'x y/z'], ['partNumber', '2']];
    const base = { host: HOST, 'content-type': 'text/plain', 'x-amz-meta-note': '  two  spaces ', connection: 'keep-alive', 'user-agent': 'x' };
    const ours = signRequest({ method: 'PUT', rawPath, query, headers: base, payloadHash: 'UNSIGNED-PAYLOAD', credentials, region: 'us-east-1', service: 's3', now });
    const sdk = new SignatureV4({ credentials, region: 'us-east-1', service: 's3', sha256: Hash.bind(null, 'sha256'), uriEscapePath: false });
    const theirs = await sdk.sign(new HttpRequest({ method: 'PUT', protocol: 'http:', hostname: HOST, path: rawPath, query: Object.fromEntries(query), headers: { ...base, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }), { signingDate: now });
    expect(ours.authorization).toBe(theirs.headers.authorization);
  });
});
