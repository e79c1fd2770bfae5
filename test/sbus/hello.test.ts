import { describe, expect, it } from 'vitest';
import { decodeDatagram, encodeDatagram } from '../../src/sbus/codec.js';
import { encodeHello, parseHello } from '../../src/sbus/hello.js';
import { AGENT_VERSION, PROTOCOL_VERSION } from '../../src/version.js';

describe('factory hello and daemon routing', () => {
  it('a hello reads back with its scope and versions; anything else says what is wrong', () => {
    expect(parseHello(encodeHello('AUTH_a'))).toEqual({ kind: 'sandlet-factory-hello', scope: 'AUTH_a', agent: AGENT_VERSION, protocol: PROTOCOL_VERSION });
    expect(parseHello(Buffer.from('not json'))).toBe('not JSON');
    expect(parseHello(Buffer.from('{"kind":"other","scope":"a"}'))).toBe('not a sandlet factory hello');
    expect(parseHello(Buffer.from('{"kind":"sandlet-factory-hello","scope":1,"agent":"0","protocol":1}'))).toBe('hello lacks scope, agent or protocol');
  });

  it('carries the daemon a command is for, in both codecs, and refuses a non-string one', () => {
    for (const codec of ['json', 'msgpack'] as const) {
      const body = encodeDatagram({ command: 'SBUS_CMD_EXECUTE', params: { a: '1' }, daemon: 'rot13.mjs' }, [], codec);
      expect(decodeDatagram(body, 0)).toMatchObject({ command: 'SBUS_CMD_EXECUTE', params: { a: '1' }, daemon: 'rot13.mjs' });
      expect(decodeDatagram(encodeDatagram({ command: 'SBUS_CMD_PING' }, [], codec), 0).daemon).toBeUndefined();
    }
    const bad = encodeDatagram({ command: 'SBUS_CMD_PING', daemon: 7 as unknown as string }, [], 'json');
    expect(() => decodeDatagram(bad, 0)).toThrow(/"daemon" is not a string/);
  });
});
