// Verifies a request's AWS SigV4 signature as S3 does, with the S3 keys sandlet issued: in the
// Authorization header or a presigned URL (with its expiry), a 15-minute clock skew, the region
// in config, and the payload hash mode the client chose. SigV2 is refused by name.
import { S3Error } from './s3-errors.js';
import type { S3Key, S3KeyStore } from './s3-keys.js';
import {
  ALGORITHM,
  canonicalRequest,
  credentialScope,
  parseAmzDate,
  queryPairs,
  sameSignature,
  signHex,
  signingKey,
  stringToSign,
} from './sigv4.js';

export const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

export type PayloadMode = 'unsigned' | 'signed' | 'streaming-signed' | 'streaming-signed-trailer' | 'streaming-unsigned-trailer';

export interface SignedRequest {
  method: string;
  rawPath: string;
  rawQuery: string;
  /** Every header's values, names in lower case (node's `headersDistinct`). */
  headers: Record<string, string[]>;
}

export interface Verified {
  key: S3Key;
  mode: PayloadMode;
  /** The hash the body must have (mode `signed`). */
  payloadHash?: string;
  /** What chunk signatures chain from (streaming modes). */
  signingKey: Buffer;
  amzDate: string;
  scope: string;
  seedSignature: string;
}

const SIGV2 = new S3Error('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');

/** How the request is signed: `v4`, `v2` (refused), or `none`. */
export function signatureKind(headers: Record<string, string[] | string | undefined>, query: URLSearchParams): 'v4' | 'v2' | 'none' {
  const a = headers.authorization;
  const auth = Array.isArray(a) ? a[0] : a;
  if (auth?.startsWith(`${ALGORITHM} `)) return 'v4';
  if (auth?.startsWith('AWS ')) return 'v2';
  if (query.has('X-Amz-Algorithm')) return 'v4';
  if (query.has('AWSAccessKeyId')) return 'v2';
  return 'none';
}

function one(headers: Record<string, string[]>, name: string): string | undefined {
  return headers[name]?.[0];
}

interface Parsed {
  accessKey: string;
  day: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  payloadHash: string;
  presigned?: { expires: number };
}

function parseCredential(value: string, malformed: (m: string) => S3Error): Pick<Parsed, 'accessKey' | 'day' | 'region' | 'service'> {
  const parts = value.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request' || !/^\d{8}$/.test(parts[1]!)) throw malformed(`the Credential ${JSON.stringify(value.slice(0, 200))} must be <key>/<YYYYMMDD>/<region>/s3/aws4_request`);
  return { accessKey: parts[0]!, day: parts[1]!, region: parts[2]!, service: parts[3]! };
}

function parseHeaderAuth(auth: string, headers: Record<string, string[]>): Parsed {
  const malformed = (m: string): S3Error => new S3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; ${m}`);
  const fields = new Map<string, string>();
  for (const part of auth.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const cred = fields.get('Credential');
  const signed = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!cred || !signed || !signature) throw malformed('it needs Credential, SignedHeaders and Signature');
  const amzDate = one(headers, 'x-amz-date');
  if (!amzDate) throw new S3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  const payloadHash = one(headers, 'x-amz-content-sha256');
  if (!payloadHash) throw new S3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  return { ...parseCredential(cred, malformed), signedHeaders: signed.split(';'), signature, amzDate, payloadHash };
}

function parseQueryAuth(query: URLSearchParams): Parsed {
  const malformed = (m: string): S3Error => new S3Error('AuthorizationQueryParametersError', m);
  if (query.get('X-Amz-Algorithm') !== ALGORITHM) throw malformed(`X-Amz-Algorithm only supports "${ALGORITHM}"`);
  const cred = query.get('X-Amz-Credential');
  const amzDate = query.get('X-Amz-Date');
  const expires = query.get('X-Amz-Expires');
  const signed = query.get('X-Amz-SignedHeaders');
  const signature = query.get('X-Amz-Signature');
  if (!cred || !amzDate || !expires || !signed || !signature) {
    throw malformed('Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.');
  }
  const secs = Number(expires);
  if (!/^\d+$/.test(expires) || secs > MAX_PRESIGN_SECONDS) throw malformed(`X-Amz-Expires must be a whole number of seconds up to ${MAX_PRESIGN_SECONDS}`);
  return {
    ...parseCredential(cred, (m) => malformed(`Error parsing the X-Amz-Credential parameter; ${m}`)),
    signedHeaders: signed.split(';'),
    signature,
    amzDate,
    payloadHash: query.get('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD',
    presigned: { expires: secs },
  };
}

function payloadMode(hash: string): PayloadMode {
  if (hash === 'UNSIGNED-PAYLOAD') return 'unsigned';
  if (hash === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD') return 'streaming-signed';
  if (hash === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER') return 'streaming-signed-trailer';
  if (hash === 'STREAMING-UNSIGNED-PAYLOAD-TRAILER') return 'streaming-unsigned-trailer';
  if (/^[0-9a-f]{64}$/.test(hash)) return 'signed';
  throw new S3Error('InvalidArgument', `x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER], or a SHA-256 hash in hex`);
}

/** Checks the request's signature; throws the S3Error S3 would answer. */
export function verifySigV4(req: SignedRequest, query: URLSearchParams, keys: S3KeyStore, opts: { region: string; now?: number }): Verified {
  const kind = signatureKind(req.headers, query);
  if (kind === 'v2') throw SIGV2;
  if (kind === 'none') throw new S3Error('AccessDenied', 'Access Denied: this access point needs a request signed with an S3 key sandlet issued');
  const auth = one(req.headers, 'authorization');
  const p = auth !== undefined ? parseHeaderAuth(auth, req.headers) : parseQueryAuth(query);
  const key = keys.get(p.accessKey);
  if (!key) throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', { AWSAccessKeyId: p.accessKey.slice(0, 64) });
  if (p.service !== 's3') throw new S3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; incorrect service "${p.service.slice(0, 40)}". This endpoint belongs to "s3".`);
  if (p.region !== opts.region) throw new S3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; the region '${p.region.slice(0, 40)}' is wrong; expecting '${opts.region}'`, { Region: opts.region });
  const signedAt = parseAmzDate(p.amzDate);
  if (Number.isNaN(signedAt)) throw new S3Error('AccessDenied', `X-Amz-Date ${JSON.stringify(p.amzDate.slice(0, 40))} must be YYYYMMDDTHHMMSSZ`);
  if (p.amzDate.slice(0, 8) !== p.day) throw new S3Error('SignatureDoesNotMatch', 'The credential date is not the day of X-Amz-Date');
  const now = opts.now ?? Date.now();
  const serverTime = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (p.presigned) {
    if (signedAt - now > MAX_SKEW_MS) throw new S3Error('AccessDenied', 'Request is not valid yet');
    if (now > signedAt + p.presigned.expires * 1000) {
      throw new S3Error('AccessDenied', 'Request has expired', { 'X-Amz-Expires': String(p.presigned.expires), Expires: new Date(signedAt + p.presigned.expires * 1000).toISOString(), ServerTime: serverTime });
    }
  } else if (Math.abs(now - signedAt) > MAX_SKEW_MS) {
    throw new S3Error('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', { RequestTime: p.amzDate, ServerTime: serverTime, MaxAllowedSkewMilliseconds: String(MAX_SKEW_MS) });
  }
  if (!p.signedHeaders.includes('host')) throw new S3Error('AccessDenied', 'The host header must be signed');
  for (const h of p.signedHeaders) {
    if (h !== h.toLowerCase() || !req.headers[h]) throw new S3Error('AccessDenied', `signed header ${JSON.stringify(h.slice(0, 60))} is missing from the request`);
  }
  const mode = payloadMode(p.payloadHash);
  if (p.presigned && mode !== 'unsigned' && mode !== 'signed') throw new S3Error('AuthorizationQueryParametersError', 'a presigned URL cannot carry a streaming body');
  const scope = credentialScope(p.day, p.region, p.service);
  const canonical = canonicalRequest({
    method: req.method,
    rawPath: req.rawPath,
    query: queryPairs(req.rawQuery),
    headers: new Map(p.signedHeaders.map((h) => [h, req.headers[h]!])),
    signedHeaders: p.signedHeaders,
    payloadHash: p.payloadHash,
    ...(p.presigned ? { skipQuery: 'X-Amz-Signature' } : {}),
  });
  const sts = stringToSign(p.amzDate, scope, canonical);
  const kSigning = signingKey(key.secret, p.day, p.region, p.service);
  if (!sameSignature(signHex(kSigning, sts), p.signature)) {
    throw new S3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
      AWSAccessKeyId: key.id,
      StringToSign: sts,
      CanonicalRequest: canonical,
    });
  }
  return { key, mode, ...(mode === 'signed' ? { payloadHash: p.payloadHash } : {}), signingKey: kSigning, amzDate: p.amzDate, scope, seedSignature: p.signature };
}
