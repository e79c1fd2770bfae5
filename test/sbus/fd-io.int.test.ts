import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { NonBlockingFdWritable, readableFromNonBlockingFd } from '../../src/sbus/fd-io.js';
import { closeQuietly, native } from '../../src/sbus/native.js';
import { readPipeToEnd } from '../../src/sbus/read-pipe.js';

// The task worker's pipe streams: synchronous while the pipe has data or room, a socket (which
// then owns the fd) only when it must wait. Real pipes, made non-blocking as the daemon does.

function nonBlockingPipe(size?: number): [number, number] {
  const [r, w] = native.pipe(size);
  expect(native.pollable(r, true)).toBe(true);
  expect(native.pollable(w, true)).toBe(true);
  return [r, w];
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const isOpen = (fd: number): boolean => {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};

describe('readableFromNonBlockingFd', () => {
  it('reads an input that is all in the pipe without taking the fd over', async () => {
    const [r, w] = nonBlockingPipe();
    native.tryWrite(w, Buffer.from('whole object'));
    native.close(w);
    let claimed = false;
    const stream = readableFromNonBlockingFd(r, () => (claimed = true));
    expect((await collect(stream)).toString()).toBe('whole object');
    expect(claimed).toBe(false);
    expect(isOpen(r)).toBe(true); // still the owner's to close
    native.close(r);
  });

  it('reads what is there, then takes the fd over and reads the rest as it comes', async () => {
    const [r, w] = nonBlockingPipe();
    native.tryWrite(w, Buffer.from('head-'));
    let claimed = false;
    const stream = readableFromNonBlockingFd(r, () => (claimed = true));
    expect(claimed).toBe(true);
    const body = collect(stream);
    setImmediate(() => {
      native.tryWrite(w, Buffer.from('tail'));
      native.close(w);
    });
    expect((await body).toString()).toBe('head-tail');
    // The socket closed the fd it took over.
    await new Promise((resolve) => setImmediate(resolve));
    expect(isOpen(r)).toBe(false);
  });

  it('an input larger than what it reads at once arrives whole and in order', async () => {
    const [r, w] = nonBlockingPipe(1 << 20);
    const data = Buffer.alloc(200 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    expect(native.tryWrite(w, data)).toBe(data.length);
    native.close(w);
    let claimed = false;
    const got = await collect(readableFromNonBlockingFd(r, () => (claimed = true)));
    expect(claimed).toBe(true);
    expect(got.equals(data)).toBe(true);
  });

  it('hands on what the pipe holds in one chunk, not in 64 KiB reads, and holds back when its reader is slow', async () => {
    const [r, w] = nonBlockingPipe(1 << 20);
    native.tryWrite(w, Buffer.alloc(1000, 1)); // read at once; the rest comes by the socket
    const stream = readableFromNonBlockingFd(r, () => {});
    expect(native.tryWrite(w, Buffer.alloc(900 * 1024, 2))).toBe(900 * 1024);
    const sizes: number[] = [];
    const chunks: Buffer[] = [];
    const data = Buffer.alloc(8 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 253;
    let sent = 0;
    // The writer goes on while the reader dawdles: the pipe fills, and every byte still arrives.
    const feed = (): void => {
      while (sent < data.length) {
        try {
          sent += native.tryWrite(w, data.subarray(sent, sent + 100_000));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
          return void setTimeout(feed, 2);
        }
      }
      native.close(w);
    };
    feed();
    for await (const c of stream) {
      sizes.push((c as Buffer).length);
      chunks.push(c as Buffer);
      if (sizes.length % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(sizes[0]).toBe(1000);
    expect(sizes[1]).toBeGreaterThanOrEqual(900 * 1024); // one read of all the pipe held
    const all = Buffer.concat(chunks);
    expect(all.subarray(1000, 1000 + 900 * 1024).every((b) => b === 2)).toBe(true);
    expect(all.subarray(1000 + 900 * 1024).equals(data)).toBe(true);
  });
});

describe('NonBlockingFdWritable', () => {
  it('writes an output that fits the pipe without taking the fd over; the owner closes it', async () => {
    const [r, w] = nonBlockingPipe();
    let claimed = false;
    const out = new NonBlockingFdWritable(w, () => (claimed = true));
    const read = readPipeToEnd(r, { maxBytes: 1 << 20, timeoutMs: 5000, what: 'output' });
    await new Promise<void>((resolve, reject) => out.end(Buffer.from('small output'), () => resolve()).on('error', reject));
    out.destroy();
    expect(claimed).toBe(false);
    expect(isOpen(w)).toBe(true);
    closeQuietly([w]); // as the daemon does when the task is over: the reader sees EOF
    expect((await read).toString()).toBe('small output');
  });

  it('closeFd() claims and closes the fd, socket or not, so the reader sees EOF at once', async () => {
    for (const size of [12, 200 * 1024]) {
      const [r, w] = nonBlockingPipe(64 * 1024);
      let claimed = false;
      const out = new NonBlockingFdWritable(w, () => (claimed = true));
      const read = readPipeToEnd(r, { maxBytes: 1 << 20, timeoutMs: 5000, what: 'output' });
      await new Promise<void>((resolve, reject) => out.end(Buffer.alloc(size, 0x62), () => resolve()).on('error', reject));
      out.closeFd();
      expect(claimed).toBe(true);
      expect((await read).length).toBe(size);
      expect(isOpen(w)).toBe(false);
    }
  });

  it('takes the fd over when the pipe fills, and every byte still arrives', async () => {
    const [r, w] = nonBlockingPipe(64 * 1024);
    let claimed = false;
    const out = new NonBlockingFdWritable(w, () => (claimed = true));
    const data = Buffer.alloc(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = i % 253;
    const read = readPipeToEnd(r, { maxBytes: 2 << 20, timeoutMs: 5000, what: 'output' });
    for (let off = 0; off < data.length; off += 100_000) out.write(data.subarray(off, off + 100_000));
    out.end();
    expect((await read).equals(data)).toBe(true);
    expect(claimed).toBe(true);
  });

  it('writes corked chunks in one writev; one that half fits goes on by the socket, in order', async () => {
    const [r, w] = nonBlockingPipe(64 * 1024);
    const out = new NonBlockingFdWritable(w, () => {});
    const data = Buffer.alloc(300 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 3) % 247;
    const read = readPipeToEnd(r, { maxBytes: 1 << 20, timeoutMs: 5000, what: 'output' });
    out.cork();
    // 50 KiB fits, the next 50 KiB only in part: the writev stops mid-chunk.
    for (let off = 0; off < data.length; off += 50 * 1024) out.write(data.subarray(off, off + 50 * 1024));
    out.uncork();
    out.end();
    expect((await read).equals(data)).toBe(true);
  });

  it('a reader that went away is an EPIPE error, not a crash', async () => {
    const [r, w] = nonBlockingPipe();
    native.close(r);
    const out = new NonBlockingFdWritable(w, () => {});
    const err = await new Promise<Error>((resolve) => out.on('error', resolve).write(Buffer.from('x')));
    expect((err as NodeJS.ErrnoException).code).toBe('EPIPE');
    native.close(w);
  });
});

describe('native fd helpers', () => {
  it('pollable() tells pipes from files and makes pipes non-blocking; fileSize() reads st_size', () => {
    const file = `/tmp/sl-fdio-${process.pid}`;
    fs.writeFileSync(file, 'twelve bytes');
    const fd = fs.openSync(file, 'r');
    try {
      expect(native.pollable(fd, true)).toBe(false);
      expect(native.fileSize(fd)).toBe(12);
    } finally {
      fs.closeSync(fd);
      fs.rmSync(file);
    }
    const [r, w] = native.pipe();
    expect(native.pollable(r, false)).toBe(true);
    expect(() => native.pollable(-1)).toThrow(/non-negative/);
    native.pollable(r, true);
    // Non-blocking now: an empty pipe says EAGAIN instead of blocking the thread.
    expect(() => fs.readSync(r, Buffer.alloc(1))).toThrow(/EAGAIN/);
    closeQuietly([r, w]);
  });
});

// In a task thread, as the agent runs it: the built module (dist/), so the thread loads the addon
// the way a daemon's threads do.
describe('closeClaimed in a task thread', () => {
  const fdIo = pathToFileURL(path.resolve('dist/sbus/fd-io.js')).href;

  it('closes a pipe the thread did not open, with no warning; the thread then ends busy and the process lives on', async () => {
    const [r, w] = nonBlockingPipe();
    const read = readPipeToEnd(r, { maxBytes: 1024, timeoutMs: 5000, what: 'output' });
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      process.on('warning', (w) => parentPort.postMessage('warning: ' + w.message));
      import(workerData.fdIo).then((m) => {
        m.closeClaimed(workerData.fd, () => parentPort.postMessage('claimed'));
        setTimeout(() => { parentPort.postMessage('closed'); for (;;) {} }, 50);
      });`;
    const worker = new Worker(code, { eval: true, workerData: { fd: w, fdIo } });
    const said: string[] = [];
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (m: string) => {
        said.push(m);
        if (m === 'closed') resolve();
      });
      worker.once('error', reject);
    });
    expect(said).toEqual(['claimed', 'closed']);
    expect((await read).length).toBe(0); // EOF: the pipe's only write end, the process's, is gone
    expect(await worker.terminate()).toBe(1);
  });
});
