import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';

export async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A deterministic pseudo-random stream of `total` bytes, generated chunk by chunk. */
export function patternStream(total: number, chunk = 1024 * 1024): Readable {
  let sent = 0;
  let seed = 0x9e3779b9;
  return new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk, total - sent);
      const buf = Buffer.allocUnsafe(n);
      for (let i = 0; i + 4 <= n; i += 4) {
        seed = (seed * 1664525 + 1013904223) >>> 0;
        buf.writeUInt32LE(seed, i);
      }
      for (let i = n - (n % 4); i < n; i++) buf[i] = i & 0xff;
      sent += n;
      this.push(buf);
    },
  });
}

/** Hashes a stream while passing nothing on; resolves to [sha256 hex, bytes]. */
export async function digest(stream: NodeJS.ReadableStream): Promise<[string, number]> {
  const h = createHash('sha256');
  let n = 0;
  for await (const c of stream) {
    h.update(c as Buffer);
    n += (c as Buffer).length;
  }
  return [h.digest('hex'), n];
}
