// AWS Signature Version 4 as S3 verifies it: canonical request, string to sign, signing key, and
// the per-chunk and trailer signatures of `aws-chunked` uploads. One module, so the header, the
// presigned-URL and the chunk checks share every rule.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

const signingKeys = new Map<string, Buffer>();
const MAX_SIGNING_KEYS = 1000;

/** `kSigning` for a secret, a `YYYYMMDD` day, a region and a service (kept in memory: it holds for the day). */
export function signingKey(secret: string, day: string, region: string, service: string): Buffer {
  const id = `${secret}\0${day}\0${region}\0${service}`;
  let key = signingKeys.get(id);
  if (!key) {
    key = hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), service), 'aws4_request');
    if (signingKeys.size >= MAX_SIGNING_KEYS) signingKeys.delete(signingKeys.keys().next().value!);
    signingKeys.set(id, key);
  }
  return key;
}

export function signHex(key: Buffer, stringToSign: string): string {
  return createHmac('sha256', key).update(stringToSign).digest('hex');
}

/** Compares two hex signatures in constant time. */
export function sameSignature(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** RFC 3986 percent-encoding as AWS does it: every byte but `A-Z a-z 0-9 - . _ ~` (and `/` when asked). */
export function uriEncode(s: string, keepSlash: boolean): string {
  let out: string;
  try {
    // encodeURIComponent leaves `! ' ( ) *` as they are; AWS encodes them.
    out = encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  } catch {
    // A lone surrogate: encode the bytes Node would send (U+FFFD for it), one by one.
    out = '';
    for (const byte of Buffer.from(s, 'utf8')) {
      const c = String.fromCharCode(byte);
      out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return keepSlash ? out.replace(/%2F/g, '/') : out;
}

/** Decodes a raw URL component; `+` is a literal plus in S3 paths and a space in query strings. */
function decodeComponent(raw: string, plusIsSpace: boolean): string {
  try {
    return decodeURIComponent(plusIsSpace ? raw.replace(/\+/g, ' ') : raw);
  } catch {
    return raw;
  }
}

/** S3's canonical URI: the path decoded once and encoded once (S3 does not normalise dot segments). */
export function canonicalUri(rawPath: string): string {
  return uriEncode(decodeComponent(rawPath, false), true) || '/';
}

/** The raw query string's pairs, decoded, in the order given. */
export function queryPairs(rawQuery: string): [string, string][] {
  if (!rawQuery) return [];
  return rawQuery.split('&').filter(Boolean).map((p) => {
    const eq = p.indexOf('=');
    return eq < 0 ? [decodeComponent(p, true), ''] : [decodeComponent(p.slice(0, eq), true), decodeComponent(p.slice(eq + 1), true)];
  });
}

/** Pairs encoded and sorted by name, then value; `skip` leaves out one parameter (the presigned signature). */
export function canonicalQuery(pairs: [string, string][], skip?: string): string {
  return pairs
    .filter(([k]) => k !== skip)
    .map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/** One canonical header value: trimmed, inner runs of spaces made one, repeated headers joined by `,`. */
export function canonicalHeaderValue(values: string[]): string {
  return values.map((v) => v.trim().replace(/ +/g, ' ')).join(',');
}

export interface CanonicalParts {
  method: string;
  rawPath: string;
  query: [string, string][];
  /** Header name (lower case) → its values, for the signed headers only. */
  headers: Map<string, string[]>;
  signedHeaders: string[];
  payloadHash: string;
  skipQuery?: string;
}

export function canonicalRequest(p: CanonicalParts): string {
  const headerLines = p.signedHeaders.map((h) => `${h}:${canonicalHeaderValue(p.headers.get(h) ?? [])}\n`).join('');
  return [p.method, canonicalUri(p.rawPath), canonicalQuery(p.query, p.skipQuery), headerLines, p.signedHeaders.join(';'), p.payloadHash].join('\n');
}

/** `YYYYMMDD/region/service/aws4_request` */
export function credentialScope(day: string, region: string, service: string): string {
  return `${day}/${region}/${service}/aws4_request`;
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [ALGORITHM, amzDate, scope, sha256Hex(canonical)].join('\n');
}

/** The string a chunk of an `aws-chunked` body signs, chained to the previous signature. */
export function chunkStringToSign(amzDate: string, scope: string, previous: string, chunkSha256: string): string {
  return ['AWS4-HMAC-SHA256-PAYLOAD', amzDate, scope, previous, EMPTY_SHA256, chunkSha256].join('\n');
}

/** The string the trailing headers of an `aws-chunked` body sign. */
export function trailerStringToSign(amzDate: string, scope: string, previous: string, trailerSha256: string): string {
  return ['AWS4-HMAC-SHA256-TRAILER', amzDate, scope, previous, trailerSha256].join('\n');
}

/** `20130524T000000Z` → epoch ms, or NaN. */
export function parseAmzDate(s: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return NaN;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

/** Headers a signer leaves unsigned: hop-by-hop ones a client library may change on the way. */
const UNSIGNED_HEADERS = new Set(['authorization', 'connection', 'expect', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'x-amzn-trace-id']);

/** `Date` → `YYYYMMDDTHHMMSSZ` */
function amzDateOf(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

export interface SignRequest {
  method: string;
  /** The path as it is sent (already encoded). */
  rawPath: string;
  query: [string, string][];
  /** Header names in lower case; `host` included. */
  headers: Record<string, string>;
  payloadHash: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  region: string;
  service: string;
  now?: Date;
}

/**
 * Signs a request in the Authorization header, as an AWS client does: the headers to send, with
 * x-amz-date, x-amz-content-sha256 and authorization added. The same rules verifySigV4 checks.
 */
export function signRequest(r: SignRequest): Record<string, string> {
  const amzDate = amzDateOf(r.now ?? new Date());
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = { ...r.headers, 'x-amz-date': amzDate, 'x-amz-content-sha256': r.payloadHash };
  const signed = Object.keys(headers).filter((h) => !UNSIGNED_HEADERS.has(h)).sort();
  const canonical = canonicalRequest({
    method: r.method,
    rawPath: r.rawPath,
    query: r.query,
    headers: new Map(signed.map((h) => [h, [headers[h]!]])),
    signedHeaders: signed,
    payloadHash: r.payloadHash,
  });
  const scope = credentialScope(day, r.region, r.service);
  const signature = signHex(signingKey(r.credentials.secretAccessKey, day, r.region, r.service), stringToSign(amzDate, scope, canonical));
  headers.authorization = `${ALGORITHM} Credential=${r.credentials.accessKeyId}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${signature}`;
  return headers;
}
