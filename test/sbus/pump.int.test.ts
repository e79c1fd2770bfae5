// The addon's pump (native.pump): bytes moved fd to fd on the loop, through real pipes and a
// real TCP connection, with its endings (done, short, silent, cancelled) and no fd left behind.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../src/sbus/native.js';
import { openFds } from '../helpers/fs.js';

const opened: number[] = [];
function pipe(): [number, number] {
  const p = native.pipe();
  opened.push(...p);
  return p;
}
afterEach(() => {
  for (const fd of opened.splice(0)) {
    try {
      native.close(fd);
    } catch {
      // closed by the test already
    }
  }
});

function pump(from: number, to: number, bytes: number, idleMs: number, chunked = false): Promise<string | null> {
  return new Promise((resolve) => native.pump(from, to, bytes, idleMs, resolve, chunked));
}

/** `body` through the pump from one pipe to another, to EOF: how it ended, and what came out. */
async function pumpPipes(body: Buffer, chunked = false): Promise<{ ended: string | null; out: Buffer }> {
  const [ar, aw] = pipe();
  const [br, bw] = pipe();
  const done = pump(ar, bw, -1, 5_000, chunked);
  const out = readAll(br);
  const writer = fs.createWriteStream('', { fd: aw, autoClose: false });
  writer.end(body);
  await once(writer, 'finish');
  native.close(aw);
  const ended = await done;
  native.close(bw);
  return { ended, out: await out };
}

async function readAll(fd: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of fs.createReadStream('', { fd, autoClose: false })) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A TCP connection to a local server: the client's socket and fd; the server's side goes to onConnection. */
async function connection(onConnection: (s: net.Socket) => void): Promise<{ server: net.Server; client: net.Socket; fd: number }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  server.once('connection', onConnection);
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  return { server, client, fd: (client as unknown as { _handle: { fd: number } })._handle.fd };
}

describe('native.pump', () => {
  it('moves exactly the bytes asked for, from a pipe to a TCP socket, and leaves the fds the caller\'s', async () => {
    const before = openFds().length;
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const received: Buffer[] = [];
    let gotAll!: Promise<void>;
    const { server, client, fd } = await connection((s) => {
      gotAll = new Promise<void>((resolve) => s.on('end', () => resolve()));
      s.on('data', (c: Buffer) => received.push(c));
    });
    const [r, w] = pipe();
    const writer = fs.createWriteStream('', { fd: w, autoClose: false });
    writer.end(Buffer.concat([body, Buffer.from('not asked for')]));
    expect(await pump(r, fd, body.length, 5_000)).toBeNull();
    client.end();
    await gotAll;
    expect(Buffer.concat(received).equals(body)).toBe(true);
    // The pump closed its dups; the pipe and the socket are still open and usable.
    expect(fs.fstatSync(r).isFIFO()).toBe(true);
    client.destroy();
    server.close();
    for (const f of opened.splice(0)) native.close(f);
    await expect.poll(() => openFds().length, { timeout: 10_000 }).toBeLessThanOrEqual(before);
  });

  it('moves to EOF when asked for -1 bytes', async () => {
    const body = randomBytes(700_000);
    const { ended, out } = await pumpPipes(body);
    expect(ended).toBeNull();
    expect(out.equals(body)).toBe(true);
  });

  it('frames what it moves as HTTP/1.1 chunks, to a TCP socket whose reader is slow, and to a pipe', async () => {
    /** Decodes chunks (no terminating chunk: the pump's caller writes that); throws on bad framing. */
    const unchunk = (raw: Buffer): Buffer => {
      const parts: Buffer[] = [];
      let at = 0;
      while (at < raw.length) {
        const eol = raw.indexOf('\r\n', at);
        if (eol < 0) throw new Error(`no size line at ${at}`);
        const size = Number.parseInt(raw.subarray(at, eol).toString(), 16);
        if (!(size > 0)) throw new Error(`bad size line ${JSON.stringify(raw.subarray(at, eol).toString())}`);
        parts.push(raw.subarray(eol + 2, eol + 2 + size));
        if (raw.subarray(eol + 2 + size, eol + 4 + size).toString() !== '\r\n') throw new Error(`no CRLF after the chunk at ${at}`);
        at = eol + 4 + size;
      }
      return Buffer.concat(parts);
    };
    const body = randomBytes(5 * 1024 * 1024 + 3);
    const received: Buffer[] = [];
    let gotAll!: Promise<void>;
    const { server, client, fd } = await connection((s) => {
      // A slow reader (a stand-in for a slow client): the pump meets a full socket, mid-chunk and
      // mid-size-line alike.
      s.pause();
      const drip = setInterval(() => {
        let c: Buffer | null;
        while ((c = s.read(300_000) as Buffer | null) !== null) received.push(c);
      }, 5);
      gotAll = new Promise<void>((resolve) =>
        s.on('end', () => {
          clearInterval(drip);
          let c: Buffer | null;
          while ((c = s.read() as Buffer | null) !== null) received.push(c);
          resolve();
        }),
      );
      s.on('readable', () => {});
    });
    const [r, w] = pipe();
    const pumped = pump(r, fd, -1, 10_000, true);
    const writer = fs.createWriteStream('', { fd: w, autoClose: false });
    writer.end(body);
    await once(writer, 'finish');
    native.close(w);
    expect(await pumped).toBeNull();
    client.end();
    await gotAll;
    expect(unchunk(Buffer.concat(received)).equals(body)).toBe(true);
    client.destroy();
    server.close();

    // A pipe destination (no socket: plain writes of the framing).
    const small = randomBytes(100_000);
    const piped = await pumpPipes(small, true);
    expect(piped.ended).toBeNull();
    expect(unchunk(piped.out).equals(small)).toBe(true);
  });

  it('says ESHORT when the source ends first, ETIMEDOUT when it stays silent, and nothing once cancelled', async () => {
    const [ar, aw] = pipe();
    const [, bw] = pipe();
    const short = pump(ar, bw, 100, 5_000);
    fs.writeSync(aw, Buffer.alloc(10));
    native.close(aw);
    expect(await short).toBe('ESHORT');

    const [cr] = pipe();
    const [, dw] = pipe();
    expect(await pump(cr, dw, -1, 100)).toBe('ETIMEDOUT');

    let called = false;
    const id = native.pump(cr, dw, -1, 0, () => (called = true));
    native.cancelPump(id);
    native.cancelPump(id); // a second cancel is a no-op
    await new Promise((r) => setTimeout(r, 50));
    expect(called).toBe(false);
  });

  it('from a TCP source: batches a fast body, never holds back a trickle, and leaves the socket readable by Node', async () => {
    let server!: net.Socket;
    const conn = await connection((s) => (server = s));
    await expect.poll(() => server !== undefined).toBe(true);
    // As the front door does: Node stops reading the socket, the pump reads it.
    const handle = (conn.client as unknown as { _handle: { readStop(): number; readStart(): number } })._handle;
    handle.readStop();
    const [r, w] = pipe();
    const got: Buffer[] = [];
    let gotBytes = 0;
    opened.splice(opened.indexOf(r), 1);
    const reader = new net.Socket({ fd: r, readable: true, writable: false }); // closes r when destroyed
    reader.on('data', (c) => {
      got.push(c as Buffer);
      gotBytes += c.length;
    });
    const body = randomBytes(3 * 1024 * 1024);
    const pumped = pump(conn.fd, w, body.length, 10_000);
    // A fast part, then a trickle far below the batch size: each bit must come through while
    // the sender waits (a batch held until a whole one (1 MiB) came would never end).
    server.write(body.subarray(0, 1024 * 1024));
    await expect.poll(() => gotBytes, { timeout: 10_000 }).toBe(1024 * 1024);
    for (let at = 1024 * 1024; at < 1024 * 1024 + 300; at += 100) {
      server.write(body.subarray(at, at + 100));
      await expect.poll(() => gotBytes, { timeout: 10_000 }).toBe(at + 100);
    }
    server.write(body.subarray(1024 * 1024 + 300));
    expect(await pumped).toBeNull();
    await expect.poll(() => gotBytes, { timeout: 10_000 }).toBe(body.length);
    expect(Buffer.concat(got).equals(body)).toBe(true);

    // A pump cancelled mid-body leaves the socket as Node had it: small reads wake Node again.
    const cancelled = native.pump(conn.fd, w, 10 * 1024 * 1024, 0, () => {});
    server.write(Buffer.alloc(1000, 1));
    await expect.poll(() => gotBytes, { timeout: 10_000 }).toBe(body.length + 1000);
    native.cancelPump(cancelled);
    const after: Buffer[] = [];
    conn.client.on('data', (c: Buffer) => after.push(c));
    handle.readStart();
    server.write('after');
    await expect.poll(() => Buffer.concat(after).toString(), { timeout: 10_000 }).toBe('after');
    reader.destroy();
    conn.client.destroy();
    conn.server.close();
  });

  it('refuses bad arguments with a TypeError', () => {
    expect(() => native.pump(-1, 1, 10, 0, () => {})).toThrow(TypeError);
    expect(() => native.pump(0, 1, -2, 0, () => {})).toThrow(TypeError);
  });
});
