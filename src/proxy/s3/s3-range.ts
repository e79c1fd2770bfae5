// The byte ranges S3 clients ask for in `Range` (one range: `bytes=S-E`, `bytes=S-`, `bytes=-N`),
// resolved against a length, and the stream that cuts one out of a storlet's output.
import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from './s3-errors.js';

export type RangeRequest = { start: number; end?: number } | { suffix: number };

/** Undefined when there is no Range or it is not one S3 would honour (S3 then sends the whole object). */
export function parseRangeHeader(value: string | undefined): RangeRequest | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*bytes=(\d{0,15})-(\d{0,15})\s*$/.exec(value);
  if (!m) {
    if (/^\s*bytes=.*,/.test(value)) throw new S3Error('NotImplemented', 'A header you provided implies functionality that is not implemented (multiple ranges)');
    return undefined;
  }
  if (m[1] === '' && m[2] === '') return undefined;
  if (m[1] === '') return { suffix: Number(m[2]) };
  if (m[2] !== '' && Number(m[2]) < Number(m[1])) return undefined;
  return m[2] === '' ? { start: Number(m[1]) } : { start: Number(m[1]), end: Number(m[2]) };
}

/** The inclusive byte span of a range in an object of `total` bytes; InvalidRange when none of it exists. */
export function resolveRange(r: RangeRequest, total: number, asked: string): { start: number; end: number } {
  const unsatisfiable = (): S3Error => new S3Error('InvalidRange', 'The requested range is not satisfiable', { RangeRequested: asked.slice(0, 100), ActualObjectSize: String(total) });
  if ('suffix' in r) {
    if (r.suffix === 0 || total === 0) throw unsatisfiable();
    return { start: Math.max(0, total - r.suffix), end: total - 1 };
  }
  if (r.start >= total) throw unsatisfiable();
  return { start: r.start, end: Math.min(r.end ?? total - 1, total - 1) };
}

/**
 * Passes bytes `start..end` (inclusive) of what flows through and errors if the stream ends before
 * `end`: the output did not have the length it was announced with (the connection is then cut).
 * With `exact`, bytes past `end` are an error too.
 */
export class ByteSlice extends Transform {
  private offset = 0;
  private readonly first: number;
  private readonly last: number;
  private readonly exact: boolean;

  constructor(start: number, end: number, exact = false) {
    super();
    this.first = start;
    this.last = end;
    this.exact = exact;
  }

  private ended = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const from = Math.max(this.first - this.offset, 0);
    const to = Math.min(this.last + 1 - this.offset, chunk.length);
    this.offset += chunk.length;
    if (this.exact && this.offset > this.last + 1) return cb(new Error(`the output is longer than the ${this.last + 1} bytes announced`));
    if (this.ended) return cb();
    if (from < to) this.push(chunk.subarray(from, to));
    // The range is complete: the response can end now; the rest of the output is read and dropped.
    if (!this.exact && this.offset >= this.last + 1) {
      this.ended = true;
      this.push(null);
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.ended) return cb();
    cb(this.offset < this.last + 1 ? new Error(`the output ended at ${this.offset} bytes, before byte ${this.last} announced`) : null);
  }
}
