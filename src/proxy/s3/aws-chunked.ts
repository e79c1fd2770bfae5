// Decodes an `aws-chunked` upload, the form current S3 SDKs send by default: each chunk
// `<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n`, a zero-size chunk, then trailing headers
// (a checksum, and for signed trailers `x-amz-trailer-signature`). Signed chunks are verified
// (each signature chains from the previous one) before any of their bytes go on; the trailer's
// checksum is compared with the decoded bytes. Any failure errors the stream with an S3Error,
// so whatever reads it (a storlet, then the upstream PUT) stores nothing.
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { createChecksum, isChecksumAlgorithm, type Checksum } from './checksums.js';
import { S3Error } from './s3-errors.js';
import { chunkStringToSign, sameSignature, sha256Hex, signHex, trailerStringToSign } from './sigv4.js';

/** Largest signed chunk held back until its signature checks (SDKs send 64 KiB; S3's own cap is larger). */
export const MAX_SIGNED_CHUNK = 16 * 1024 * 1024;
const MAX_LINE = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;

export interface ChunkSigning {
  signingKey: Buffer;
  amzDate: string;
  scope: string;
  seedSignature: string;
}

export interface AwsChunkedOptions {
  /** Set for STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]: every chunk must be signed. */
  signing?: ChunkSigning;
  /** Whether trailing headers are announced (`x-amz-trailer`), and which checksum one must be. */
  trailer?: string;
  /** `x-amz-decoded-content-length`, when given. */
  decodedLength?: number;
}

type State = 'size' | 'data' | 'data-end' | 'trailer' | 'done';

const bad = (m: string): S3Error => new S3Error('IncompleteBody', `the aws-chunked body is malformed: ${m}`);

export class AwsChunkedDecoder extends Transform {
  private readonly o: AwsChunkedOptions;
  private buf: Buffer = Buffer.alloc(0);
  private state: State = 'size';
  private remaining = 0;
  private chunkSig = '';
  private held: Buffer[] = [];
  private chunkHash = createHash('sha256');
  private previous: string;
  private decoded = 0;
  private readonly trailers: [string, string][] = [];
  private trailerBytes = 0;
  private readonly checksum: Checksum | undefined;
  private readonly checksumName: string | undefined;

  constructor(opts: AwsChunkedOptions) {
    super();
    this.o = opts;
    this.previous = opts.signing?.seedSignature ?? '';
    if (opts.trailer !== undefined) {
      const name = opts.trailer.trim().toLowerCase();
      const algo = name.replace(/^x-amz-checksum-/, '');
      if (!name.startsWith('x-amz-checksum-') || !isChecksumAlgorithm(algo)) throw new S3Error('InvalidRequest', `the trailer ${JSON.stringify(name.slice(0, 60))} is not a checksum sandlet verifies (x-amz-checksum-crc32, -crc32c, -sha1, -sha256)`);
      this.checksum = createChecksum(algo);
      this.checksumName = name;
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    try {
      this.parse();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.state !== 'done') return cb(bad('it ended before its final chunk'));
    if (this.o.decodedLength !== undefined && this.decoded !== this.o.decodedLength) {
      return cb(new S3Error('IncompleteBody', `the decoded body holds ${this.decoded} bytes, x-amz-decoded-content-length says ${this.o.decodedLength}`));
    }
    cb();
  }

  /** Takes one CRLF-terminated line off the buffer, or undefined until one has arrived. */
  private line(): string | undefined {
    const at = this.buf.indexOf('\r\n');
    if (at < 0) {
      if (this.buf.length > MAX_LINE) throw bad('a chunk header or trailer line is too long');
      return undefined;
    }
    if (at > MAX_LINE) throw bad('a chunk header or trailer line is too long');
    const text = this.buf.subarray(0, at).toString('latin1');
    this.buf = this.buf.subarray(at + 2);
    return text;
  }

  private parse(): void {
    for (;;) {
      if (this.state === 'size') {
        const l = this.line();
        if (l === undefined) return;
        const m = /^([0-9a-fA-F]{1,16})(?:;chunk-signature=([0-9a-f]{64}))?$/.exec(l);
        if (!m) throw bad(`bad chunk header ${JSON.stringify(l.slice(0, 80))}`);
        if (this.o.signing && !m[2]) throw new S3Error('SignatureDoesNotMatch', 'a chunk of a signed aws-chunked body carries no chunk-signature');
        this.remaining = parseInt(m[1]!, 16);
        if (this.o.signing && this.remaining > MAX_SIGNED_CHUNK) throw new S3Error('InvalidRequest', `a signed chunk may hold at most ${MAX_SIGNED_CHUNK} bytes`);
        this.chunkSig = m[2] ?? '';
        if (this.remaining === 0) {
          this.verifyChunk();
          this.state = 'trailer';
        } else this.state = 'data';
      } else if (this.state === 'data') {
        if (this.buf.length === 0) return;
        const take = this.buf.subarray(0, Math.min(this.remaining, this.buf.length));
        this.buf = this.buf.subarray(take.length);
        this.remaining -= take.length;
        this.decoded += take.length;
        this.checksum?.update(take);
        if (this.o.signing) {
          this.chunkHash.update(take);
          this.held.push(take);
        } else this.push(take);
        if (this.remaining === 0) this.state = 'data-end';
      } else if (this.state === 'data-end') {
        if (this.buf.length < 2) return;
        if (this.buf[0] !== 13 || this.buf[1] !== 10) throw bad('a chunk is longer than its size says');
        this.buf = this.buf.subarray(2);
        this.verifyChunk();
        for (const b of this.held) this.push(b);
        this.held = [];
        this.state = 'size';
      } else if (this.state === 'trailer') {
        const l = this.line();
        if (l === undefined) return;
        if (l === '') {
          this.finishTrailers();
          this.state = 'done';
          continue;
        }
        this.trailerBytes += l.length;
        if (this.trailerBytes > MAX_TRAILER_BYTES) throw bad('the trailing headers are too large');
        const colon = l.indexOf(':');
        if (colon <= 0) throw bad(`bad trailing header ${JSON.stringify(l.slice(0, 80))}`);
        this.trailers.push([l.slice(0, colon).trim().toLowerCase(), l.slice(colon + 1).trim()]);
      } else {
        if (this.buf.length > 0) throw bad('bytes follow the final chunk');
        return;
      }
    }
  }

  private verifyChunk(): void {
    const s = this.o.signing;
    if (!s) return;
    const digest = this.chunkHash.digest('hex');
    this.chunkHash = createHash('sha256');
    const expected = signHex(s.signingKey, chunkStringToSign(s.amzDate, s.scope, this.previous, digest));
    if (!sameSignature(expected, this.chunkSig)) throw new S3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided (a chunk of the aws-chunked body).');
    this.previous = this.chunkSig;
  }

  private finishTrailers(): void {
    const sig = this.trailers.find(([k]) => k === 'x-amz-trailer-signature');
    const headers = this.trailers.filter(([k]) => k !== 'x-amz-trailer-signature');
    if (this.o.signing && this.o.trailer !== undefined) {
      if (!sig) throw new S3Error('SignatureDoesNotMatch', 'the signed aws-chunked body has no x-amz-trailer-signature');
      const canonical = headers.map(([k, v]) => `${k}:${v}\n`).join('');
      const s = this.o.signing;
      const expected = signHex(s.signingKey, trailerStringToSign(s.amzDate, s.scope, this.previous, sha256Hex(canonical)));
      if (!sameSignature(expected, sig[1])) throw new S3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided (the trailing headers).');
    }
    if (this.checksum) {
      const got = headers.find(([k]) => k === this.checksumName);
      if (!got) throw new S3Error('InvalidRequest', `the body announced the trailer ${this.checksumName} but did not send it`);
      if (got[1] !== this.checksum.digest()) throw new S3Error('BadDigest', `The ${this.checksumName} you specified did not match the calculated checksum.`);
    }
  }
}
