// The flexible checksums S3 clients send (`x-amz-checksum-<algo>`, as a header or a trailer),
// computed over the body as it streams: base64 of the big-endian digest, as S3 compares them.
import { createHash, type Hash } from 'node:crypto';
import zlib from 'node:zlib';

export const CHECKSUM_ALGORITHMS = ['crc32', 'crc32c', 'sha1', 'sha256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

export interface Checksum {
  update(data: Buffer): void;
  digest(): string;
}

let crc32cTable: Uint32Array | undefined;

function crc32c(data: Buffer, prev: number): number {
  if (!crc32cTable) {
    crc32cTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crc32cTable[i] = c >>> 0;
    }
  }
  let crc = ~prev >>> 0;
  for (const b of data) crc = crc32cTable[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

function crc(fn: (data: Buffer, prev: number) => number): Checksum {
  let value = 0;
  return {
    update: (data) => (value = fn(data, value)),
    digest: () => {
      const out = Buffer.alloc(4);
      out.writeUInt32BE(value >>> 0);
      return out.toString('base64');
    },
  };
}

function hash(algo: string): Checksum {
  const h: Hash = createHash(algo);
  return { update: (d) => h.update(d), digest: () => h.digest('base64') };
}

export function isChecksumAlgorithm(a: string): a is ChecksumAlgorithm {
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(a);
}

export function createChecksum(algo: ChecksumAlgorithm): Checksum {
  if (algo === 'crc32') return crc((d, p) => zlib.crc32(d, p));
  if (algo === 'crc32c') return crc(crc32c);
  return hash(algo);
}
