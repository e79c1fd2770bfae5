// The one parser of the byte ranges a caller hands a storlet (`bytes=START-END`, both inclusive).
import { SandletError } from '../errors.js';

export interface ByteRangeSpec {
  start: number;
  end: number;
}

/** `bytes=START-END` (HTTP headers); `unit: ''` reads the bare `START-END` of the CLI's --range. */
export function parseByteRange(value: string, what = 'range', unit = 'bytes='): ByteRangeSpec {
  const v = value.trim();
  const m = v.startsWith(unit) ? /^(\d{1,15})-(\d{1,15})$/.exec(v.slice(unit.length)) : null;
  if (!m || Number(m[2]) < Number(m[1])) {
    throw new SandletError('EBADNAME', `${what} must be ${unit}START-END with START <= END, not ${JSON.stringify(value.slice(0, 80))}`);
  }
  return { start: Number(m[1]), end: Number(m[2]) };
}
