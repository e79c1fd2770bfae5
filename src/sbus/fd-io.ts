import fs from 'node:fs';
import net from 'node:net';
import { Readable, Writable } from 'node:stream';
import { closeQuietly } from './native.js';

// Opening streams on raw fds. Pipes and sockets go through libuv (net.Socket), never through the
// 4-thread fs pool, or, when already non-blocking, through plain reads and writes for as long as
// they have data or room; regular files, which libuv cannot poll, use fs streams.
// Task workers import this module, so they load the addon too (its state is per thread); they use
// it only to close fds. Terminating such a worker, busy, idle or while it loads, is safe (tried
// 300 times each on Node 18 and 20); the daemon aborts seen once came from fds closed twice.

function isPollable(fd: number): boolean {
  const st = fs.fstatSync(fd);
  return st.isFIFO() || st.isSocket();
}

/** A Writable over fd. The stream owns a pollable fd (closes it when destroyed); a file fd stays the caller's. */
export function writableFromFd(fd: number, pollable = isPollable(fd)): Writable {
  if (pollable) return new net.Socket({ fd, readable: false, writable: true, allowHalfOpen: true });
  return new FileFdWritable(fd);
}

/** Input bytes read synchronously before a storlet starts, at most (the rest comes by polling). */
const EAGER_READ_BYTES = 64 * 1024;
let scratch: Buffer | undefined;

/**
 * A Readable over a pipe or socket already in non-blocking mode. What the pipe holds is read now:
 * when that reaches EOF (a small object the gateway wrote before EXECUTE), no socket is made at
 * all; otherwise a net.Socket reads the rest, after the bytes read here. The fd stays the
 * caller's unless `claim` was called: it is, just before a socket takes the fd over (and will
 * close it).
 */
export function readableFromNonBlockingFd(fd: number, claim: () => void): Readable {
  scratch ??= Buffer.allocUnsafe(EAGER_READ_BYTES);
  const chunks: Buffer[] = [];
  let total = 0;
  while (total < EAGER_READ_BYTES) {
    let n: number;
    try {
      n = fs.readSync(fd, scratch, 0, EAGER_READ_BYTES - total, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
      return new Readable({ read() {} }).destroy(err as Error);
    }
    if (n === 0) return new BufferedReadable(chunks);
    chunks.push(Buffer.from(scratch.subarray(0, n)));
    total += n;
  }
  claim();
  return new PipeReadable(fd, chunks);
}

/** Input is read into slices of slabs this large: a read takes up to the rest of the slab. */
const SLAB_BYTES = 1024 * 1024;
/** A slab with less room than this left is set aside for a new one (Node's own read size). */
const MIN_READ_BYTES = 64 * 1024;

/**
 * A pipe read by a socket into slices of a slab (no copy), rather than into Node's 64 KiB
 * buffers: one read takes all that the pipe holds, so the gateway's batches (up to 1 MiB) reach the
 * storlet as one chunk, not four, and each chunk costs the storlet one turn of its loop.
 */
class PipeReadable extends Readable {
  private readonly sock: net.Socket;

  constructor(fd: number, head: Buffer[]) {
    super({ highWaterMark: SLAB_BYTES });
    for (const c of head) this.push(c);
    let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    let used = 0;
    // Node takes `onread` for any socket; its types name it for connect() only.
    const opts: net.SocketConstructorOpts & { onread: net.OnReadOpts } = {
      fd,
      readable: true,
      writable: false,
      allowHalfOpen: true,
      onread: {
        buffer: () => {
          if (SLAB_BYTES - used < MIN_READ_BYTES) {
            slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
            used = 0;
          }
          return slab.subarray(used);
        },
        // false (this stream is full) stops the socket's reads until _read() resumes it.
        callback: (n: number, buf: Uint8Array) => {
          used += n;
          return this.push(Buffer.from(buf.buffer, buf.byteOffset, n));
        },
      },
    };
    this.sock = new net.Socket(opts);
    this.sock.on('end', () => this.push(null));
    this.sock.on('error', (err) => this.destroy(err));
    this.sock.resume(); // its own readable side carries nothing; flowing, it reports the EOF
  }

  override _read(): void {
    this.sock.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.sock.destroy();
    cb(err);
  }
}

class BufferedReadable extends Readable {
  constructor(private readonly chunks: Buffer[]) {
    super();
  }

  override _read(): void {
    for (const c of this.chunks) this.push(c);
    this.chunks.length = 0;
    this.push(null);
  }
}

/**
 * A Writable over a pipe or socket already in non-blocking mode: writes go straight to the fd
 * while it has room, and only when it fills (EAGAIN) does a net.Socket take the fd over to wait
 * for room, so an output that fits the pipe costs no socket. Ownership as for
 * readableFromNonBlockingFd: until `claim` (or closeFd()), ending or destroying the stream
 * leaves the fd open for its owner to close (the reader sees EOF then).
 */
export class NonBlockingFdWritable extends Writable {
  private sock: net.Socket | undefined;

  constructor(
    private readonly fd: number,
    private readonly claim: () => void,
  ) {
    super({ highWaterMark: 256 * 1024 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeAll([chunk], cb);
  }

  /** What was written while corked goes in one writev: one wake-up of the reader, not one per chunk. */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.writeAll(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  private writeAll(bufs: Buffer[], cb: (err?: Error | null) => void): void {
    if (this.sock) return this.viaSocket(bufs, cb);
    let at = 0; // bufs[at..] are still to go
    try {
      while (at < bufs.length) {
        let n = bufs.length - at === 1 ? fs.writeSync(this.fd, bufs[at]!) : fs.writevSync(this.fd, bufs.slice(at));
        for (; at < bufs.length && n >= bufs[at]!.length; at++) n -= bufs[at]!.length;
        if (n > 0) bufs[at] = bufs[at]!.subarray(n);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return cb(err as Error);
      this.claim();
      this.sock = new net.Socket({ fd: this.fd, readable: false, writable: true, allowHalfOpen: true });
      this.sock.on('error', (e) => this.destroy(e));
      return this.viaSocket(bufs.slice(at), cb);
    }
    cb();
  }

  private viaSocket(bufs: Buffer[], cb: (err?: Error | null) => void): void {
    let accepted = true;
    for (const b of bufs) accepted = this.sock!.write(b);
    afterWrite(this.sock!, accepted, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.sock) this.sock.end(() => cb());
    else cb();
  }

  /**
   * Done with the fd, once finished: closes it (claimed first) unless a socket owns it already,
   * and destroys the stream. The reader sees EOF now, not once the fd's owner closes it.
   */
  closeFd(): void {
    if (!this.sock) closeClaimed(this.fd, this.claim);
    this.destroy();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.sock?.destroy();
    cb(err);
  }
}

/**
 * Closes a task pipe from a worker thread, claimed first (see readableFromNonBlockingFd). A plain
 * close(2) through the addon: Node's fs.close warns of an fd the thread did not open, and a
 * socket made only to close the fd cost 40-170 µs per close (two per task).
 */
export function closeClaimed(fd: number, claim: () => void): void {
  claim();
  closeQuietly([fd]);
}

/**
 * Calls cb once `stream` took what was just written to it (`accepted`: what write() returned):
 * at once, on 'drain', or with an error when the stream fails or closes first. A stream that
 * failed (EPIPE: its reader is gone) never drains, so waiting for 'drain' alone waits forever.
 */
export function afterWrite(stream: Writable, accepted: boolean, cb: (err?: Error | null) => void): void {
  if (accepted) return cb();
  if (stream.destroyed || stream.errored) return cb(stream.errored ?? closedEarly());
  const onDrain = (): void => done(null);
  const onClose = (): void => done(stream.errored ?? closedEarly());
  const done = (err: Error | null): void => {
    stream.off('drain', onDrain);
    stream.off('close', onClose);
    cb(err);
  };
  stream.on('drain', onDrain);
  stream.on('close', onClose);
}

/** Resolves once a writable finished; rejects when it failed or closed first (or already had). */
export function ended(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.writableFinished) return resolve();
    if (stream.destroyed || stream.errored) return reject(stream.errored ?? closedEarly());
    stream.once('finish', resolve);
    stream.once('error', reject);
    stream.once('close', () => (stream.writableFinished ? resolve() : reject(stream.errored ?? closedEarly())));
  });
}

function closedEarly(): Error {
  return new Error('output closed before it was finished');
}

// fs.ReadStream/WriteStream close their fd on destroy() whatever autoClose says; a file fd that
// someone else owns needs streams that never close it.
export class FileFdReadable extends Readable {
  private inFlight: Promise<void> = Promise.resolve();

  constructor(private readonly fd: number) {
    super({ highWaterMark: 256 * 1024 });
  }

  override _read(size: number): void {
    const buf = Buffer.allocUnsafe(Math.max(size, 64 * 1024));
    // position null: read from the file's current offset, as a pipe would be read.
    this.inFlight = new Promise((resolve) => {
      fs.read(this.fd, buf, 0, buf.length, null, (err, n) => {
        resolve();
        if (this.destroyed) return;
        if (err) this.destroy(err);
        else this.push(n > 0 ? buf.subarray(0, n) : null);
      });
    });
  }

  /** Resolves when no read is pending on the fd, so its owner may close it. */
  settled(): Promise<void> {
    return this.inFlight;
  }
}

class FileFdWritable extends Writable {
  constructor(private readonly fd: number) {
    super({ highWaterMark: 256 * 1024 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const writeAll = (off: number): void => {
      fs.write(this.fd, chunk, off, chunk.length - off, null, (err, n) => {
        if (err) cb(err);
        else if (off + n < chunk.length) writeAll(off + n);
        else cb();
      });
    };
    writeAll(0);
  }
}

export function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}

export function formatBytes(n: number): string {
  if (n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}
