import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { native } from '../../src/sbus/native.js';
import { readPipeToEnd } from '../../src/sbus/read-pipe.js';
import { openFds, tempDir } from '../helpers/fs.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

function receiveOne(fd: number, max = 65536): Promise<{ body: Buffer; fds: number[]; truncated: boolean }> {
  return new Promise((resolve) => {
    const l = native.listen(fd, max, (body, fds, truncated) => {
      l.close();
      resolve({ body, fds, truncated });
    });
  });
}

describe('native addon', () => {
  it('passes a pipe end across a datagram socket (SCM_RIGHTS)', async () => {
    const sockPath = path.join(dir, 's');
    const server = native.bind(sockPath);
    const [r, w] = native.pipe();
    const received = receiveOne(server);
    native.send(sockPath, Buffer.from('hi'), [w]);
    native.close(w);
    const got = await received;
    expect(got.body.toString()).toBe('hi');
    expect(got.fds).toHaveLength(1);
    // Write through the received copy; read it from the original read end.
    const sock = new net.Socket({ fd: got.fds[0]!, readable: false, writable: true });
    sock.end('through the wall');
    expect((await readPipeToEnd(r, { maxBytes: 1024, timeoutMs: 5000, what: 'pipe' })).toString()).toBe('through the wall');
  });

  it('flags an oversized datagram as truncated instead of delivering part of it as whole', async () => {
    const sockPath = path.join(dir, 's');
    const server = native.bind(sockPath);
    const received = receiveOne(server, 100);
    native.send(sockPath, Buffer.alloc(101, 1), []);
    const got = await received;
    expect(got.truncated).toBe(true);
  });

  it('replaces a stale socket file but refuses a live one', () => {
    const sockPath = path.join(dir, 's');
    const first = native.bind(sockPath);
    expect(() => native.bind(sockPath)).toThrow(/bind .*\/s: EADDRINUSE/);
    native.close(first); // the file stays behind, as after a crash
    expect(fs.existsSync(sockPath)).toBe(true);
    const second = native.bind(sockPath);
    native.close(second);
  });

  it('names the errno and the path in errors', () => {
    const missing = path.join(dir, 'nobody');
    let err: (Error & { code?: string; path?: string }) | undefined;
    try {
      native.send(missing, Buffer.from('x'), []);
    } catch (e) {
      err = e as Error & { code?: string; path?: string };
    }
    expect(err?.code).toBe('ENOENT');
    expect(err?.path).toBe(missing);
    expect(err?.message).toContain(`sendmsg ${missing}: ENOENT`);
    expect(() => native.bind(path.join(dir, 'x'.repeat(120)))).toThrow(/ENAMETOOLONG/);
    expect(() => native.close(987654)).toThrow(/EBADF/);
  });

  it('reads a pipe to EOF, bounded, and closes it', async () => {
    const read = (fd: number, max: number) =>
      new Promise<[string | null, Buffer | null]>((resolve) => native.readToEnd(fd, max, (err, data) => resolve([err, data])));
    const [r1, w1] = native.pipe();
    const p1 = read(r1, 100);
    native.tryWrite(w1, Buffer.from('small reply'));
    native.close(w1);
    const [err1, data1] = await p1;
    expect(err1).toBeNull();
    expect(data1!.toString()).toBe('small reply');
    const [r2, w2] = native.pipe();
    const p2 = read(r2, 10);
    native.tryWrite(w2, Buffer.alloc(11));
    expect((await p2)[0]).toBe('ETOOLARGE');
    native.close(w2);
    const [r3, w3] = native.pipe();
    native.close(w3);
    expect(await read(r3, 10)).toEqual([null, Buffer.alloc(0)]);
    // Each read end was closed by the addon.
    for (const fd of [r1, r2, r3]) expect(() => fs.fstatSync(fd)).toThrow(/EBADF/);
  });

  it('returns close-on-exec pipes', () => {
    const [r, w] = native.pipe(1 << 20);
    const flags = fs.readFileSync(`/proc/self/fdinfo/${r}`, 'utf8');
    // O_CLOEXEC is 02000000 (octal) in the flags line.
    expect(Number.parseInt(/flags:\s+(\d+)/.exec(flags)![1]!, 8) & 0o2000000).toBeTruthy();
    native.close(r);
    native.close(w);
  });

  it('reports EAGAIN when the receiver queue is full', () => {
    const sockPath = path.join(dir, 's');
    const server = native.bind(sockPath);
    let code: string | undefined;
    for (let i = 0; i < 100_000 && !code; i++) {
      try {
        native.send(sockPath, Buffer.alloc(1024), []);
      } catch (e) {
        code = (e as { code?: string }).code;
      }
    }
    expect(code).toBe('EAGAIN');
    native.close(server);
  });

  it('streams a pipe with openReader: paused until resumed, pause holds data back, EOF after the fd closed', async () => {
    const [r, w] = native.pipe();
    const isOpen = (fd: number) => fs.existsSync(`/proc/self/fd/${fd}`);
    const events: string[] = [];
    let onEvent: () => void = () => {};
    const reader = native.openReader(r, 4, (code, chunk) => {
      events.push(chunk ? chunk.toString() : `end:${code}:${isOpen(r) ? 'open' : 'closed'}`);
      onEvent();
    });
    const next = () => new Promise<void>((resolve) => (onEvent = resolve));
    native.tryWrite(w, Buffer.from('abcdef'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(events).toEqual([]); // paused: nothing read yet
    let got = next();
    native.resumeReader(reader);
    await got;
    native.pauseReader(reader); // after the first 4-byte chunk
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(events).toEqual(['abcd']);
    got = next();
    native.resumeReader(reader);
    await got;
    native.close(w);
    got = next();
    await got;
    expect(events).toEqual(['abcd', 'ef', 'end:null:closed']);
    native.closeReader(reader); // after the end: a no-op
    native.cancelRead(reader); // an id of another kind of op, long over: a no-op too
  });

  it('openReader chunks keep their own bytes while later reads go on: 5 MiB kept whole read back as written', async () => {
    const [r, w] = native.pipe();
    const data = crypto.randomBytes(5 * 1024 * 1024 + 123); // many full reads, the last one short
    const chunks: Buffer[] = [];
    const ended = new Promise<string | null>((resolve) => {
      const reader = native.openReader(r, 64 * 1024, (code, chunk) => {
        if (chunk) chunks.push(chunk); // kept, not consumed: a later read must not touch it
        else resolve(code);
      });
      native.resumeReader(reader);
    });
    for (let off = 0; off < data.length; ) {
      try {
        off += native.tryWrite(w, data.subarray(off, off + 256 * 1024));
      } catch (err) {
        if ((err as { code?: string }).code !== 'EAGAIN') throw err;
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    native.close(w);
    expect(await ended).toBeNull();
    expect(chunks.every((c) => c.length <= 64 * 1024)).toBe(true);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
  });

  it('closeReader() stops the reads and closes the fd; nothing is called after', async () => {
    const [r, w] = native.pipe();
    let calls = 0;
    const reader = native.openReader(r, 1024, () => calls++);
    native.resumeReader(reader);
    native.closeReader(reader);
    native.closeReader(reader); // twice: a no-op
    native.tryWrite(w, Buffer.from('late'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls).toBe(0);
    expect(fs.existsSync(`/proc/self/fd/${r}`)).toBe(false);
    native.close(w);
    expect(() => native.openReader(-1, 1024, () => {})).toThrow(/bad arguments/);
  });

  it('watchHangup calls back once the reader of a pipe is gone, not while it only has room', async () => {
    const before = openFds().length;
    const [r, w] = native.pipe();
    let fired = 0;
    const gone = new Promise<void>((resolve) => native.watchHangup(w, () => (fired++, resolve())));
    // A write end with room and a live reader: no wake-up. The reader still reads what is written.
    await new Promise((res) => setTimeout(res, 50));
    expect(fired).toBe(0);
    native.tryWrite(w, Buffer.from('x'));
    const reader = new net.Socket({ fd: r, readable: true, writable: false });
    await new Promise((res) => reader.once('data', res));
    reader.destroy();
    await gone;
    await new Promise((res) => setTimeout(res, 20));
    expect(fired).toBe(1);
    native.close(w);
    await new Promise((res) => setTimeout(res, 20));
    expect(openFds().length).toBe(before); // the watch's dup went with it
  });

  it('unwatch ends a watch silently; the reader then sees EOF once the fd is closed', async () => {
    const before = openFds().length;
    const [r, w] = native.pipe();
    let fired = 0;
    const id = native.watchHangup(w, () => fired++);
    native.unwatch(id);
    native.unwatch(id); // a second time: no-op
    native.tryWrite(w, Buffer.from('status'));
    native.close(w);
    expect((await readPipeToEnd(r, { maxBytes: 100, timeoutMs: 5000, what: 'status' })).toString()).toBe('status');
    expect(fired).toBe(0);
    expect(openFds().length).toBe(before);
  });
});
