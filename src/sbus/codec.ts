import os from 'node:os';
import { Packr } from 'msgpackr';
import { SandletError } from '../errors.js';
import type { Codec, CommandParams, FdMetadata } from './protocol.js';

// Body layout, as Storlets' sbus: three native-endian int32 (fd count, metadata length,
// params length), then the metadata bytes, then the params bytes.
export const HEADER_BYTES = 12;
const LE = os.endianness() === 'LE';

// Plain maps and arrays only: no msgpackr records or extensions, so any msgpack peer can read it.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

export interface DecodedDatagram {
  codec: Codec;
  command: string;
  params: Record<string, unknown>;
  taskId: string | undefined;
  /** sandlet-only routing key on the factory's connection (see SBusClient's `daemon`). */
  daemon?: string;
  fdMetadata: FdMetadata[];
}

function writeInt(buf: Buffer, value: number, offset: number): void {
  if (LE) buf.writeInt32LE(value, offset);
  else buf.writeInt32BE(value, offset);
}

/** A native-endian int32 of the SBus header. */
export function readInt(buf: Buffer, offset: number): number {
  return LE ? buf.readInt32LE(offset) : buf.readInt32BE(offset);
}

function serialize(value: unknown, codec: Codec): Buffer {
  return codec === 'json' ? Buffer.from(JSON.stringify(value), 'utf8') : packr.pack(value);
}

/** Encodes one SBus datagram body. Storlets sends no metadata bytes at all when there are no fds. */
export function encodeDatagram(
  params: CommandParams,
  fdMetadata: readonly FdMetadata[],
  codec: Codec,
): Buffer {
  const meta = fdMetadata.length > 0 ? serialize(fdMetadata, codec) : Buffer.alloc(0);
  const body = serialize(params, codec);
  const out = Buffer.allocUnsafe(HEADER_BYTES + meta.length + body.length);
  writeInt(out, fdMetadata.length, 0);
  writeInt(out, meta.length, 4);
  writeInt(out, body.length, 8);
  meta.copy(out, HEADER_BYTES);
  body.copy(out, HEADER_BYTES + meta.length);
  return out;
}

/** JSON starts with `{`; a msgpack map starts with fixmap (0x80–0x8f), map16 or map32. */
export function detectCodec(firstByte: number | undefined): Codec | undefined {
  if (firstByte === 0x7b) return 'json';
  if (firstByte !== undefined && ((firstByte & 0xf0) === 0x80 || firstByte === 0xde || firstByte === 0xdf)) {
    return 'msgpack';
  }
  return undefined;
}

function bad(message: string): SandletError {
  return new SandletError('ESBUSPROTO', `malformed SBus datagram: ${message}`);
}

function parse(bytes: Buffer, codec: Codec, what: string): unknown {
  try {
    return codec === 'json' ? JSON.parse(bytes.toString('utf8')) : packr.unpack(bytes);
  } catch (err) {
    throw bad(`${what} is not valid ${codec} (${err instanceof Error ? err.message : String(err)})`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Decodes and checks one datagram body; `fdCount` is the number of fds that really arrived.
 * Throws ESBUSPROTO naming what is wrong. Never trusts a length it has not checked.
 */
export function decodeDatagram(body: Buffer, fdCount: number): DecodedDatagram {
  if (body.length < HEADER_BYTES) throw bad(`${body.length} bytes is shorter than the 12-byte header`);
  const nFds = readInt(body, 0);
  const metaLen = readInt(body, 4);
  const paramsLen = readInt(body, 8);
  if (nFds < 0 || metaLen < 0 || paramsLen < 0) throw bad('negative count in header');
  // The header's lengths are authoritative. Bytes after them are ignored: Storlets' C libsbus
  // sends one more (its "terminating NULL", never written, so any value). A body shorter than
  // announced is refused.
  if (HEADER_BYTES + metaLen + paramsLen > body.length) {
    throw bad(
      `header announces ${metaLen} metadata + ${paramsLen} params bytes but the body holds ${body.length - HEADER_BYTES}`,
    );
  }
  if (nFds !== fdCount) throw bad(`header announces ${nFds} fds but ${fdCount} arrived`);
  const paramsBytes = body.subarray(HEADER_BYTES + metaLen, HEADER_BYTES + metaLen + paramsLen);
  const codec = detectCodec(paramsBytes[0]);
  if (codec === undefined) throw bad('params are neither a JSON object nor a msgpack map');

  const params = parse(paramsBytes, codec, 'params');
  if (!isRecord(params)) throw bad('params are not an object');
  if (typeof params.command !== 'string') throw bad('params carry no "command" string');
  const inner = params.params ?? {};
  if (!isRecord(inner)) throw bad('"params" is not an object');
  if (params.task_id !== undefined && typeof params.task_id !== 'string') throw bad('"task_id" is not a string');
  if (params.daemon !== undefined && typeof params.daemon !== 'string') throw bad('"daemon" is not a string');

  let fdMetadata: FdMetadata[] = [];
  if (metaLen > 0) {
    const meta = parse(body.subarray(HEADER_BYTES, HEADER_BYTES + metaLen), codec, 'metadata');
    if (!Array.isArray(meta)) throw bad('metadata is not a list');
    fdMetadata = meta.map((entry, i) => {
      if (!isRecord(entry) || !isRecord(entry.storlets) || typeof entry.storlets.type !== 'string') {
        throw bad(`metadata of fd ${i} has no storlets.type`);
      }
      const storage = entry.storage ?? {};
      if (!isRecord(storage)) throw bad(`metadata of fd ${i} has a non-object "storage"`);
      return { storlets: entry.storlets as FdMetadata['storlets'], storage };
    });
  }
  if (fdMetadata.length !== nFds) throw bad(`${nFds} fds but ${fdMetadata.length} metadata entries`);
  const decoded: DecodedDatagram = { codec, command: params.command, params: inner, taskId: params.task_id as string | undefined, fdMetadata };
  if (params.daemon !== undefined) decoded.daemon = params.daemon as string;
  return decoded;
}

export function encodeValue(value: unknown, codec: Codec): Buffer {
  return serialize(value, codec);
}

export function decodeValue(bytes: Buffer): unknown {
  const codec = detectCodec(bytes[0]);
  if (codec === undefined) throw bad('reply is neither a JSON object nor a msgpack map');
  return parse(bytes, codec, 'reply');
}
