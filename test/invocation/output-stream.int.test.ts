// The output stream on real pipes: its first bytes read as a stream, the rest pumped by the addon.
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OutputStream } from '../../src/invocation/output-stream.js';
import { readOutputHead } from '../../src/proxy/small-body.js';
import { native } from '../../src/sbus/native.js';

const open: number[] = [];
afterEach(() => {
  for (const fd of open.splice(0)) {
    try {
      fs.closeSync(fd);
    } catch {
      // closed by its owner already
    }
  }
});

function output(fd: number): OutputStream {
  return new OutputStream(fd, {
    storlet: 'test.mjs',
    idleTimeoutMs: 5000,
    readerStallMs: 5000,
    status: Promise.resolve({ status: true, message: '' }),
    onAbandon: () => {},
    onClose: () => {},
  });
}

/** Writes `data` into a pipe through libuv (never blocking the thread the reader runs on), then closes it. */
function writeAll(fd: number, data: Buffer): Promise<void> {
  const w = new net.Socket({ fd, readable: false, writable: true });
  return new Promise((resolve, reject) => {
    w.on('error', reject);
    w.end(data, () => resolve());
  });
}

describe('OutputStream.handOff()', () => {
  it('hands what the reader took to the caller and the rest to the pump, every byte once and in order', async () => {
    const [outR, outW] = native.pipe();
    const [dstR, dstW] = native.pipe();
    open.push(dstW);
    native.pollable(dstW, true); // as a client's socket is: the pump waits for room, never the thread
    const data = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 0xff;
    const body = output(outR);
    const received: Buffer[] = [];
    const sink = new net.Socket({ fd: dstR, readable: true, writable: false });
    sink.on('data', (c: Buffer) => received.push(c));
    const sunk = new Promise((r) => sink.once('end', r));

    const writing = writeAll(outW, data);
    const head = await readOutputHead(body);
    expect(head.ended).toBe(false);
    const rest = body.handOff();
    expect(rest).toBeDefined();
    const sent = [...head.chunks, ...rest!];
    const pumped = body.pumpTo(dstW, false);
    await writing; // and the write end closed: the pump meets the end
    await pumped;
    fs.closeSync(dstW);
    open.splice(open.indexOf(dstW), 1);
    await sunk;
    expect(Buffer.concat([...sent, ...received]).equals(data)).toBe(true);
    expect(body.bytes).toBe(data.length);
  });

  it('gives nothing to pump once the reader met the end: the rest comes through the stream', async () => {
    const [outR, outW] = native.pipe(1024 * 1024);
    const body = output(outR);
    body.on('error', () => {});
    await writeAll(outW, Buffer.alloc(100 * 1024, 1)); // fits in the pipe: all in before the reader starts
    const head = await readOutputHead(body);
    // Whether the end came with the head or just after, no pump may take a closed fd.
    await new Promise((r) => setTimeout(r, 50));
    if (!head.ended) {
      expect(body.handOff()).toBeUndefined();
      const rest = Buffer.concat(await body.toArray());
      expect(head.bytes + rest.length).toBe(100 * 1024);
    } else expect(head.bytes).toBe(100 * 1024);
  });
});
