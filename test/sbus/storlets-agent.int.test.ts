// sandlet's SBus client (as the gateway uses it with `sbus_codec: json`) against a Storlets agent.
// The real one is a Python process around the C libsbus, which this repository cannot run: the
// peer here is a stand-in that receives on a real datagram socket with real fds, reads what it
// got by libsbus's rules (sbus_recv_msg: three native ints, then exactly the announced metadata
// and params bytes, at most 4096 bytes in all) and answers byte for byte as
// storlets/agent/common/server.py does (json.dumps of status, message and, for EXECUTE, task_id).
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SBusClient } from '../../src/sbus/client.js';
import { readInt } from '../../src/sbus/codec.js';
import { native } from '../../src/sbus/native.js';
import { openFds, tempDir } from '../helpers/fs.js';
import { int32, pythonJson } from '../helpers/wire.js';

/** libsbus's receive buffer (MAX_MSG_LENGTH): a longer datagram reaches a Storlets agent cut short. */
const LIBSBUS_MAX_MSG = 4096;

interface Received {
  body: Buffer;
  nFds: number;
  metadata: unknown;
  params: Record<string, unknown>;
}

let dir: string;
let cleanup: () => void;
let sockPath: string;
let listener: { close(): void };
let received: Received[];
/** What the stand-in answers: a function of the params it read. */
let answer: (params: Record<string, unknown>) => Record<string, unknown>;

beforeEach(() => {
  ({ dir, cleanup } = tempDir());
  sockPath = path.join(dir, 'storlets_agent');
  received = [];
  const fd = native.bind(sockPath);
  listener = native.listen(fd, 1 << 16, (body, fds) => {
    const ints = [0, 4, 8].map((o) => readInt(body, o));
    const [nFds, metaLen, paramsLen] = ints as [number, number, number];
    const metadata = metaLen > 0 ? JSON.parse(body.subarray(12, 12 + metaLen).toString('utf8')) : undefined;
    const params = JSON.parse(body.subarray(12 + metaLen, 12 + metaLen + paramsLen).toString('utf8')) as Record<string, unknown>;
    received.push({ body, nFds, metadata, params });
    // server.py: the reply goes to the service-out fd, the first; the agent keeps no other fd here.
    fs.writeSync(fds[0]!, Buffer.from(pythonJson(answer(params)), 'utf8'));
    for (const f of fds) fs.closeSync(f);
  });
});
afterEach(async () => {
  listener.close();
  await new Promise((r) => setTimeout(r, 10));
  cleanup();
});

describe('SBus client (json codec) and a Storlets agent', () => {
  it('sends what libsbus reads back whole, and parses the agent\'s PING reply', async () => {
    answer = () => ({ status: true, message: 'OK' });
    const client = new SBusClient(sockPath, { codec: 'json' });
    expect(await client.ping()).toEqual({ status: true, message: 'OK' });
    const meta = '[{"storlets":{"type":"SBUS_FD_SERVICE_OUT"},"storage":{}}]';
    const params = '{"command":"SBUS_CMD_PING"}';
    // Byte for byte: the exact lengths, nothing after them (libsbus would ignore it anyway).
    expect(received[0]!.body).toEqual(Buffer.concat([int32(1), int32(meta.length), int32(params.length), Buffer.from(meta), Buffer.from(params)]));
    expect(received[0]!.body.length).toBeLessThanOrEqual(LIBSBUS_MAX_MSG);
  });

  it('parses EXECUTE, CANCEL and failure replies as the Python agent writes them', async () => {
    const client = new SBusClient(sockPath, { codec: 'json' });
    answer = () => ({ status: true, message: 'OK', task_id: '1a2b3c4d' });
    const before = openFds().length;
    const pipes = [native.pipe(), native.pipe(), native.pipe()];
    const log = fs.openSync(path.join(dir, 'log'), 'a');
    const reply = await client.execute({ color: 'red', 'caf\u00e9': '\u2603' }, [
      { fd: pipes[0]![0], type: 'SBUS_FD_INPUT_OBJECT', storage: { 'X-Object-Meta-Color': 'blue' } },
      { fd: pipes[1]![1], type: 'SBUS_FD_OUTPUT_OBJECT' },
      { fd: pipes[2]![1], type: 'SBUS_FD_OUTPUT_OBJECT_METADATA' },
      { fd: log, type: 'SBUS_FD_LOGGER' },
    ]);
    expect(reply).toEqual({ status: true, message: 'OK', task_id: '1a2b3c4d' });
    const got = received[0]!;
    // The datagram as Storlets' SBusExecuteDatagram expects it: service out first, then its fds in order.
    expect(got.nFds).toBe(5);
    expect((got.metadata as { storlets: { type: string } }[]).map((m) => m.storlets.type)).toEqual([
      'SBUS_FD_SERVICE_OUT', 'SBUS_FD_INPUT_OBJECT', 'SBUS_FD_OUTPUT_OBJECT', 'SBUS_FD_OUTPUT_OBJECT_METADATA', 'SBUS_FD_LOGGER',
    ]);
    expect(got.params).toEqual({ command: 'SBUS_CMD_EXECUTE', params: { color: 'red', 'caf\u00e9': '\u2603' } });
    for (const [r, w] of pipes) native.close(r), native.close(w);
    fs.closeSync(log);
    expect(openFds().length).toBe(before);

    answer = (p) => ({ status: true, message: `Cancelled task ${String(p.task_id)}` });
    expect(await client.cancel('1a2b3c4d')).toEqual({ status: true, message: 'Cancelled task 1a2b3c4d' });
    expect(received[1]!.params).toEqual({ command: 'SBUS_CMD_CANCEL', task_id: '1a2b3c4d' });

    // json.dumps escapes every non-ASCII character.
    answer = () => ({ status: false, message: 'Task id caf\u00e9 \u2603 is not found' });
    const raw = pythonJson(answer({}));
    expect(raw).toBe('{"status": false, "message": "Task id caf\\u00e9 \\u2603 is not found"}');
    expect(await client.cancel('caf\u00e9')).toEqual({ status: false, message: 'Task id caf\u00e9 \u2603 is not found' });
  });
});
