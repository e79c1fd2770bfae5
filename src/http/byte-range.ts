// The one parser of the byte ranges a caller hands a storlet (`bytes=START-END`, both inclusive).
import { SandletError } from '../errors.js';

export interface ByteRangeSpec {
  start: number;
  end: number;
}

export function parseByteRange(value: string, what = 'range'): ByteRangeSpec {
  const m = /^bytes=(\d{1,15})-(\d{1,15})$/.exec(value.trim());
  if (!m || Number(m[2]) < Number(m[1])) {
    throw new SandletError('EBADNAME', `${what} must be bytes=START-END with START <= END, not ${JSON.stringify(value.slice(0, 80))}`);
  }
  return { start: Number(m[1]), end: Number(m[2]) };
}
