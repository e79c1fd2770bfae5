import os from 'node:os';

const LE = os.endianness() === 'LE';

/** A native-endian int32, as the SBus header holds it. */
export function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  if (LE) b.writeInt32LE(n);
  else b.writeInt32BE(n);
  return b;
}

/**
 * JSON as Python's json.dumps writes it by default (Storlets' gateway and agents use it): ", " and
 * ": " separators, every character outside printable ASCII as a lower-case \uXXXX escape.
 * Integers, strings, booleans, null, lists and dicts only (what SBus carries).
 */
export function pythonJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value).map(([k, v]) => `${pythonJson(k)}: ${pythonJson(v)}`).join(', ')}}`;
  }
  if (typeof value === 'number' && !Number.isInteger(value)) throw new Error('pythonJson: floats print differently in Python');
  return JSON.stringify(value).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A datagram body laid out as Storlets' C libsbus lays it out (src/c/sbus/sbus.c,
 * dump_data_to_bytestream): three native ints (fd count, metadata length, params length), the
 * metadata, the params, then one more byte it counts as a "terminating NULL" but never writes, so
 * it holds whatever malloc left there (`trailing`). Lengths are Python's len() of the JSON text,
 * which json.dumps keeps ASCII, so they are byte counts. With no fds the gateway sends no metadata.
 */
export function libsbusDatagram(nFds: number, metadata: string | undefined, params: string, trailing = 0xa5): Buffer {
  const meta = Buffer.from(metadata ?? '', 'ascii');
  const p = Buffer.from(params, 'ascii');
  return Buffer.concat([int32(nFds), int32(meta.length), int32(p.length), meta, p, Buffer.from([trailing])]);
}

/** Per-fd metadata as Storlets' SBusFileDescriptor.metadata builds it (`type` added last). */
export function storletsFdMetadata(type: string, storlets: Record<string, string> = {}, storage: Record<string, string> = {}): Record<string, unknown> {
  return { storlets: { ...storlets, type }, storage };
}
