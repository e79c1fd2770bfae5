import fs from 'node:fs';
import net from 'node:net';
import { Readable, Writable } from 'node:stream';

// Opening streams on raw fds. Pipes and sockets go through libuv (net.Socket), never through the
// 4-thread fs pool; regular files, which libuv cannot poll, use fs streams.
// No native addon here: task workers import this module, and terminating a worker thread that
// loaded the addon aborts the daemon (seen as SIGABRT).

export function isPollable(fd: number): boolean {
  const st = fs.fstatSync(fd);
  return st.isFIFO() || st.isSocket();
}

/** A Readable over fd. The stream owns a pollable fd (closes it when destroyed); a file fd stays the caller's. */
export function readableFromFd(fd: number, pollable = isPollable(fd)): Readable {
  if (pollable) return new net.Socket({ fd, readable: true, writable: false, allowHalfOpen: true });
  return new FileFdReadable(fd);
}

/** A Writable over fd, with the same ownership rule as readableFromFd. */
export function writableFromFd(fd: number, pollable = isPollable(fd)): Writable {
  if (pollable) return new net.Socket({ fd, readable: false, writable: true, allowHalfOpen: true });
  return new FileFdWritable(fd);
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
