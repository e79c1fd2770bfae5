import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SBusClient } from '../../src/sbus/client.js';
import { encodeDatagram } from '../../src/sbus/codec.js';
import { readPipeToEnd } from '../../src/sbus/read-pipe.js';
import { native } from '../../src/sbus/native.js';
import { SBusServer } from '../../src/sbus/server.js';
import { openFds, tempDir } from '../helpers/fs.js';
import { int32, libsbusDatagram } from '../helpers/wire.js';
import fs from 'node:fs';

const logger = pino({ level: 'silent' });

let dir: string;
let cleanup: () => void;
let server: SBusServer;
let sockPath: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir());
  sockPath = path.join(dir, 'factory_pipe');
  server = new SBusServer(sockPath, { logger, maxDatagramBytes: 4096 });
  server.on('SBUS_CMD_PING', () => ({ status: true, message: 'pong' }));
  server.on('SBUS_CMD_EXECUTE', (req) => ({ status: true, message: `got ${req.fds.length}`, task_id: 't1' }));
  server.listen();
});
afterEach(async () => {
  server.close();
  // The socket fd is released in libuv's close callback, on the next loop turn.
  await new Promise((r) => setTimeout(r, 10));
  cleanup();
});

/** Sends a raw body with fresh pipe write ends; resolves to what each read end saw before EOF. */
async function sendRaw(body: Buffer, nfds: number): Promise<string[]> {
  const pipes = Array.from({ length: nfds }, () => native.pipe());
  native.send(sockPath, body, pipes.map(([, w]) => w));
  for (const [, w] of pipes) native.close(w);
  // EOF on every read end proves the server closed every fd it received.
  return Promise.all(pipes.map(([r]) => readPipeToEnd(r, { maxBytes: 65536, timeoutMs: 5000, what: 'reply' }).then(String)));
}

describe('SBus server and client', () => {
  it('answers PING in msgpack and in JSON, each in its own codec', async () => {
    expect(await new SBusClient(sockPath).ping()).toEqual({ status: true, message: 'pong' });
    expect(await new SBusClient(sockPath, { codec: 'json' }).ping()).toEqual({ status: true, message: 'pong' });
    const body = encodeDatagram({ command: 'SBUS_CMD_PING' }, [{ storlets: { type: 'SBUS_FD_SERVICE_OUT' }, storage: {} }], 'json');
    const [reply] = await sendRaw(body, 1);
    expect(JSON.parse(reply!)).toEqual({ status: true, message: 'pong' });
  });

  it('survives malformed datagrams and closes every fd it received', async () => {
    const before = openFds().length;
    const ping = Buffer.from('{"command":"SBUS_CMD_PING"}');
    const svc = Buffer.from('[{"storlets":{"type":"SBUS_FD_SERVICE_OUT"},"storage":{}}]');
    const two = Buffer.from('[{"storlets":{"type":"SBUS_FD_SERVICE_OUT"},"storage":{}},{"storlets":{"type":"SBUS_FD_INPUT_OBJECT"},"storage":{}}]');
    const bad: [string, Buffer, number][] = [
      ['truncated header', Buffer.from([1, 0, 0, 0, 5]), 1],
      ['lengths past the body', Buffer.concat([int32(1), int32(svc.length), int32(9999), svc, ping]), 1],
      ['fd count differs from metadata', Buffer.concat([int32(2), int32(svc.length), int32(ping.length), svc, ping]), 2],
      ['more fds than the header says', Buffer.concat([int32(1), int32(two.length), int32(ping.length), two, ping]), 3],
      ['garbage payload', Buffer.concat([int32(1), int32(3), int32(3), Buffer.from([1, 2, 3, 4, 5, 6])]), 1],
      ['first fd is not service out', Buffer.concat([int32(1), int32(two.length - 60), int32(ping.length), two.subarray(0, two.length - 60), ping]), 1],
      ['unknown command', encodeDatagram({ command: 'SBUS_CMD_SELF_DESTRUCT' }, [{ storlets: { type: 'SBUS_FD_SERVICE_OUT' }, storage: {} }], 'json'), 1],
      ['no fds at all', Buffer.concat([int32(0), int32(0), int32(ping.length), ping]), 0],
    ];
    const replies: Record<string, string[]> = {};
    for (const [name, body, nfds] of bad) replies[name] = await sendRaw(body, nfds);
    expect(JSON.parse(replies['unknown command']![0]!)).toEqual({ status: false, message: 'unknown command "SBUS_CMD_SELF_DESTRUCT"' });
    expect(JSON.parse(replies['lengths past the body']![0]!).message).toMatch(/malformed SBus datagram/);
    expect(await new SBusClient(sockPath).ping()).toMatchObject({ status: true });
    expect(openFds().length).toBe(before);
  });

  it('refuses an oversized datagram with a clear error, on both sides', async () => {
    const big = { blob: 'x'.repeat(5000) };
    await expect(new SBusClient(sockPath, { maxDatagramBytes: 4096 }).request('SBUS_CMD_PING', { params: big })).rejects.toThrow(
      /SBUS_CMD_PING datagram is .* the bound is 4 KiB/,
    );
    // A peer that ignores the bound gets a refusal, not a misparse.
    const reply = await new SBusClient(sockPath, { maxDatagramBytes: 1 << 20 }).request('SBUS_CMD_PING', { params: big });
    expect(reply).toEqual({ status: false, message: 'datagram refused: larger than the 4 KiB bound of metadata and params' });
  });

  it('never writes a reply into a regular file sent as the reply fd', async () => {
    const before = openFds().length;
    const file = path.join(dir, 'victim');
    const svc = Buffer.from('[{"storlets":{"type":"SBUS_FD_SERVICE_OUT"},"storage":{}}]');
    const ping = Buffer.from('{"command":"SBUS_CMD_PING"}');
    const bodies: [string, Buffer][] = [
      ['oversized', encodeDatagram({ command: 'SBUS_CMD_PING', params: { blob: 'x'.repeat(5000) } }, [{ storlets: { type: 'SBUS_FD_SERVICE_OUT' }, storage: {} }], 'json')],
      ['malformed', Buffer.concat([int32(1), int32(svc.length), int32(9999), svc, ping])],
      ['well formed', encodeDatagram({ command: 'SBUS_CMD_PING' }, [{ storlets: { type: 'SBUS_FD_SERVICE_OUT' }, storage: {} }], 'json')],
    ];
    for (const [name, body] of bodies) {
      const fd = fs.openSync(file, 'w+');
      native.send(sockPath, body, [fd]);
      fs.closeSync(fd);
      // The server answered a PING sent after it: it has handled this datagram.
      expect(await new SBusClient(sockPath).ping()).toMatchObject({ status: true });
      expect({ name, bytes: fs.readFileSync(file, 'utf8') }).toEqual({ name, bytes: '' });
    }
    expect(openFds().length).toBe(before);
  });

  it('takes a libsbus datagram at the bound, trailing byte and all, and refuses one announcing more', async () => {
    server.on('SBUS_CMD_ECHO', (req) => ({ status: true, message: String((req.params.blob as string).length) }));
    const meta = '[{"storlets": {"type": "SBUS_FD_SERVICE_OUT"}, "storage": {}}]';
    const params = (n: number) => `{"command": "SBUS_CMD_ECHO", "params": {"blob": "${'y'.repeat(n)}"}}`;
    const fill = 4096 - meta.length - params(0).length;
    const [atBound] = await sendRaw(libsbusDatagram(1, meta, params(fill)), 1);
    expect(JSON.parse(atBound!)).toEqual({ status: true, message: String(fill) });
    const [over] = await sendRaw(libsbusDatagram(1, meta, params(fill + 1)).subarray(0, 12 + 4096 + 1), 1);
    expect(JSON.parse(over!)).toEqual({ status: false, message: 'datagram refused: larger than the 4 KiB bound of metadata and params' });
  });

  it('carries up to the bound whole', async () => {
    server.on('SBUS_CMD_ECHO', (req) => ({ status: true, message: String((req.params.blob as string).length) }));
    const reply = await new SBusClient(sockPath, { maxDatagramBytes: 4096 }).request('SBUS_CMD_ECHO', { params: { blob: 'y'.repeat(3900) } });
    expect(reply).toEqual({ status: true, message: '3900' });
  });

  it('says clearly when nobody listens and when nobody answers', async () => {
    const nobody = path.join(dir, 'nobody');
    await expect(new SBusClient(nobody).ping()).rejects.toThrow(`no sandbox is listening at ${nobody}`);
    // A bound socket that never reads: the datagram queues, no reply comes.
    const mute = path.join(dir, 'mute');
    const fd = native.bind(mute);
    await expect(new SBusClient(mute, { timeoutMs: 300 }).ping()).rejects.toThrow(`no reply to SBUS_CMD_PING within 300 ms from ${mute}`);
    native.close(fd);
    // Its socket file is stale now.
    await expect(new SBusClient(mute).ping()).rejects.toThrow(/no sandbox is listening/);
  });

  it('retries a full receive queue with back-off inside the timeout', async () => {
    const slow = path.join(dir, 'slow');
    const fd = native.bind(slow);
    for (let full = false; !full; ) {
      try {
        native.send(slow, Buffer.alloc(1024), []);
      } catch {
        full = true;
      }
    }
    // Start serving 200 ms later: the client's first sends hit EAGAIN.
    const slowServer = new SBusServer(slow, { logger });
    slowServer.on('SBUS_CMD_PING', () => ({ status: true, message: 'late pong' }));
    setTimeout(() => {
      native.close(fd);
      slowServer.listen(); // stale file → rebinds; queue is gone with the old socket
    }, 200);
    expect(await new SBusClient(slow, { timeoutMs: 5000 }).ping()).toEqual({ status: true, message: 'late pong' });
    slowServer.close();
  });

  it("EXECUTE's onSent runs once the datagram is sent, before the reply is awaited", async () => {
    // This handler answers only at its input's EOF, which comes once the client closed its copy
    // of the write end: were onSent run after the reply, the call would wait out its timeout.
    const eofFirst = new SBusServer(path.join(dir, 'eof_first'), { logger });
    eofFirst.on('SBUS_CMD_EXECUTE', async (req) => {
      const [input] = req.claimFds();
      const got = await readPipeToEnd(input!.fd, { maxBytes: 64, timeoutMs: 5000, what: 'input' });
      return { status: true, message: `read ${got.length} bytes`, task_id: 't2' };
    });
    eofFirst.listen();
    const [r, w] = native.pipe();
    native.tryWrite(w, Buffer.from('abc'));
    let sent = 0;
    const reply = await new SBusClient(path.join(dir, 'eof_first'), { timeoutMs: 3000 }).execute({}, [{ fd: r, type: 'SBUS_FD_INPUT_OBJECT' }], undefined, () => {
      sent++;
      native.close(w);
    });
    native.close(r);
    expect(sent).toBe(1);
    expect(reply).toEqual({ status: true, message: 'read 3 bytes', task_id: 't2' });
    eofFirst.close();
  });

  it('hands claimed fds to the handler and closes unclaimed ones', async () => {
    const before = openFds().length;
    const [r1, w1] = native.pipe();
    const reply = await new SBusClient(sockPath).execute({}, [{ fd: w1, type: 'SBUS_FD_INPUT_OBJECT' }]);
    native.close(w1);
    expect(reply).toEqual({ status: true, message: 'got 1', task_id: 't1' });
    expect((await readPipeToEnd(r1, { maxBytes: 10, timeoutMs: 5000, what: 'eof' })).length).toBe(0);
    expect(openFds().length).toBe(before);
  });
});
