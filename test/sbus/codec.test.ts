import { describe, expect, it } from 'vitest';
import { decodeDatagram, detectCodec, encodeDatagram, HEADER_BYTES } from '../../src/sbus/codec.js';
import { int32, libsbusDatagram, pythonJson, storletsFdMetadata } from '../helpers/wire.js';


describe('SBus codec', () => {
  it('decodes a Storlets JSON datagram built byte by byte', () => {
    // What storlets.sbus sends for EXECUTE with a service-out fd and an input fd.
    const metadata = '[{"storlets": {"type": "SBUS_FD_SERVICE_OUT"}, "storage": {}}, ' +
      '{"storlets": {"type": "SBUS_FD_INPUT_OBJECT", "start": "0", "end": "9"}, "storage": {"X-Object-Meta-Color": "blue"}}]';
    const params = '{"command": "SBUS_CMD_EXECUTE", "params": {"mode": "fast"}, "task_id": "abc"}';
    const body = Buffer.concat([int32(2), int32(Buffer.byteLength(metadata)), int32(Buffer.byteLength(params)), Buffer.from(metadata), Buffer.from(params)]);
    const d = decodeDatagram(body, 2);
    expect(d.codec).toBe('json');
    expect(d.command).toBe('SBUS_CMD_EXECUTE');
    expect(d.params).toEqual({ mode: 'fast' });
    expect(d.taskId).toBe('abc');
    expect(d.fdMetadata[1]).toEqual({
      storlets: { type: 'SBUS_FD_INPUT_OBJECT', start: '0', end: '9' },
      storage: { 'X-Object-Meta-Color': 'blue' },
    });
  });

  it('decodes Storlets PING with no fds and no metadata bytes', () => {
    const params = '{"command": "SBUS_CMD_PING"}';
    const body = Buffer.concat([int32(0), int32(0), int32(params.length), Buffer.from(params)]);
    expect(decodeDatagram(body, 0)).toMatchObject({ codec: 'json', command: 'SBUS_CMD_PING', params: {}, fdMetadata: [] });
  });

  it('encodes JSON exactly in Storlets layout', () => {
    const body = encodeDatagram({ command: 'SBUS_CMD_PING' }, [{ storlets: { type: 'SBUS_FD_SERVICE_OUT' }, storage: {} }], 'json');
    const meta = '[{"storlets":{"type":"SBUS_FD_SERVICE_OUT"},"storage":{}}]';
    const params = '{"command":"SBUS_CMD_PING"}';
    expect(body).toEqual(Buffer.concat([int32(1), int32(meta.length), int32(params.length), Buffer.from(meta), Buffer.from(params)]));
  });

  it('round-trips msgpack and detects it per datagram', () => {
    const fdMeta = [
      { storlets: { type: 'SBUS_FD_SERVICE_OUT' }, storage: {} },
      { storlets: { type: 'SBUS_FD_INPUT_OBJECT' }, storage: { a: 'ü' } },
    ];
    const body = encodeDatagram({ command: 'SBUS_CMD_EXECUTE', params: { k: 'v' }, task_id: 't' }, fdMeta, 'msgpack');
    expect(body[HEADER_BYTES + body.readInt32LE(4)]! & 0xf0).toBe(0x80);
    const d = decodeDatagram(body, 2);
    expect(d).toEqual({ codec: 'msgpack', command: 'SBUS_CMD_EXECUTE', params: { k: 'v' }, taskId: 't', fdMetadata: fdMeta });
  });

  it('detects codecs from the first params byte', () => {
    expect(detectCodec(0x7b)).toBe('json');
    expect(detectCodec(0x81)).toBe('msgpack');
    expect(detectCodec(0xde)).toBe('msgpack');
    expect(detectCodec(0x5b)).toBeUndefined();
    expect(detectCodec(undefined)).toBeUndefined();
  });

  const ping = Buffer.from('{"command":"SBUS_CMD_PING"}');
  const cases: [string, Buffer, number, RegExp][] = [
    ['truncated header', Buffer.from([1, 0, 0]), 0, /shorter than the 12-byte header/],
    ['lengths past the body', Buffer.concat([int32(0), int32(0), int32(500), ping]), 0, /announces 0 metadata \+ 500 params/],
    ['negative length', Buffer.concat([int32(0), int32(-4), int32(ping.length), ping]), 0, /negative/],
    ['fd count differs from header', Buffer.concat([int32(2), int32(0), int32(ping.length), ping]), 1, /announces 2 fds but 1 arrived/],
    ['garbage payload', Buffer.concat([int32(0), int32(0), int32(4), Buffer.from([0x00, 0xff, 0x13, 0x37])]), 0, /neither a JSON object nor a msgpack map/],
    ['invalid JSON', Buffer.concat([int32(0), int32(0), int32(5), Buffer.from('{"a":')]), 0, /not valid json/],
    ['no command', Buffer.concat([int32(0), int32(0), int32(2), Buffer.from('{}')]), 0, /no "command"/],
  ];
  for (const [name, body, fds, re] of cases) {
    it(`rejects ${name} with a clear error`, () => {
      expect(() => decodeDatagram(body, fds)).toThrow(re);
    });
  }

  it('rejects metadata whose entry count differs from the fd count', () => {
    const meta = Buffer.from('[{"storlets":{"type":"SBUS_FD_SERVICE_OUT"},"storage":{}}]');
    const body = Buffer.concat([int32(2), int32(meta.length), int32(ping.length), meta, ping]);
    expect(() => decodeDatagram(body, 2)).toThrow(/2 fds but 1 metadata entries/);
  });
});

describe('SBus codec and Storlets C libsbus', () => {
  const svc = pythonJson([storletsFdMetadata('SBUS_FD_SERVICE_OUT')]);
  const ping = pythonJson({ command: 'SBUS_CMD_PING' });

  it('accepts the byte libsbus sends after the announced lengths, whatever its value', () => {
    // The datagram of issue 11: "62 metadata + 28 params bytes but the body holds 91".
    for (const trailing of [0x00, 0xa5, 0x7b]) {
      const body = libsbusDatagram(1, svc, ping, trailing);
      expect([svc.length, ping.length, body.length - HEADER_BYTES]).toEqual([62, 28, 91]);
      expect(decodeDatagram(body, 1)).toEqual({
        codec: 'json', command: 'SBUS_CMD_PING', params: {}, taskId: undefined,
        fdMetadata: [{ storlets: { type: 'SBUS_FD_SERVICE_OUT' }, storage: {} }],
      });
    }
  });

  it('reads EXECUTE as libsbus lays it out: metadata and params end where the header says', () => {
    const meta = pythonJson([
      storletsFdMetadata('SBUS_FD_SERVICE_OUT'),
      storletsFdMetadata('SBUS_FD_INPUT_OBJECT', { start: '0', end: '9' }, { 'X-Object-Meta-Color': 'bl\u00fce' }),
    ]);
    const params = pythonJson({ command: 'SBUS_CMD_EXECUTE', params: { mode: 'fast' }, task_id: 'abc' });
    // A trailing '}' would make the params invalid JSON if it were read: the header bounds them.
    const d = decodeDatagram(libsbusDatagram(2, meta, params, 0x7d), 2);
    expect(d).toMatchObject({ command: 'SBUS_CMD_EXECUTE', params: { mode: 'fast' }, taskId: 'abc' });
    expect(d.fdMetadata[1]).toEqual({ storlets: { start: '0', end: '9', type: 'SBUS_FD_INPUT_OBJECT' }, storage: { 'X-Object-Meta-Color': 'bl\u00fce' } });
  });

  it('still refuses a body shorter than the header announces', () => {
    const short = libsbusDatagram(1, svc, ping).subarray(0, HEADER_BYTES + 62 + 27);
    expect(() => decodeDatagram(short, 1)).toThrow('header announces 62 metadata + 28 params bytes but the body holds 89');
  });
});
