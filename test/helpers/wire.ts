import os from 'node:os';

const LE = os.endianness() === 'LE';

/** A native-endian int32, as the SBus header holds it. */
export function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  if (LE) b.writeInt32LE(n);
  else b.writeInt32BE(n);
  return b;
}
