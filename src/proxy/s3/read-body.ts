// Reads a small body (an upstream's XML answer, a client's XML request) whole, up to a bound.
import type { Readable } from 'node:stream';
import type { S3Error } from './s3-errors.js';

/** The body's bytes; past `max` it is destroyed and `tooLarge()` thrown. */
export async function readAtMost(body: Readable, max: number, tooLarge: () => S3Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > max) {
      body.on('error', () => {});
      body.destroy();
      throw tooLarge();
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}
