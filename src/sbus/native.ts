import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The C addon (native/sbus.c). Everything SBus needs that Node has no API for. */
export interface NativeSbus {
  /** Binds a non-blocking AF_UNIX SOCK_DGRAM socket at path; replaces a stale socket file. */
  bind(path: string): number;
  /** sendmsg of body to path, with fds as SCM_RIGHTS. Throws with .code EAGAIN on a full queue. */
  send(path: string, body: Buffer, fds: number[]): void;
  /**
   * Drives fd with a libuv poll handle; calls back once per datagram. Owns fd: close() closes it.
   * With onClosed, fd is a connected SOCK_SEQPACKET socket: its peer's EOF stops polling and calls
   * onClosed once (the fd stays open until close(), so its number is not reused meanwhile).
   */
  listen(
    fd: number,
    maxDatagramBytes: number,
    onDatagram: (body: Buffer, fds: number[], truncated: boolean) => void,
    onClosed?: () => void,
  ): { close(): void };
  /** One message on a connected SOCK_SEQPACKET socket. Throws .code EAGAIN (queue full), EPIPE (peer gone). */
  sendOn(fd: number, body: Buffer, fds: number[]): void;
  /** A listening SOCK_SEQPACKET socket at path; a stale file is replaced, a live one is EADDRINUSE. */
  listenSeqpacket(path: string): number;
  /** Connects a SOCK_SEQPACKET socket; throws ENOENT/ECONNREFUSED (nobody listens) or EAGAIN (backlog full). */
  connectSeqpacket(path: string): number;
  /** Accepts connections on a listening fd (owned: close() closes it); onConnection owns each new fd. */
  acceptOn(fd: number, onConnection: (fd: number) => void): { close(): void };
  /** pipe2(O_CLOEXEC) → [read, write]; size asks for a larger pipe buffer. */
  pipe(size?: number): [number, number];
  /**
   * Reads a pipe to EOF (or, with untilNewline, to a read that ends with '\n') under a libuv poll
   * handle and calls back once: (null, data) or an errno name / 'ETOOLARGE'. Owns fd (closes it
   * however the read ends, or on cancelRead), except when it throws: then fd stays the caller's.
   * Returns the read's id: ids, not objects, so that nothing with a native finalizer is made per
   * read.
   */
  readToEnd(fd: number, maxBytes: number, onDone: (error: string | null, data: Buffer | null) => void, untilNewline?: boolean): number;
  /** Ends a read with no callback and closes its fd; a finished read's id is a no-op. */
  cancelRead(id: number): void;
  /**
   * Reads a pipe as a stream under a libuv poll handle, paused until resumeReader(): onData(null,
   * chunk) per read, then onData(null, null) at EOF or onData(errnoName, null), each once the fd
   * is closed. Owns fd (unless it throws); after closeReader() nothing more is called. Returns the
   * reader's id.
   */
  openReader(fd: number, chunkBytes: number, onData: (error: string | null, chunk: Buffer | null) => void): number;
  resumeReader(id: number): void;
  pauseReader(id: number): void;
  closeReader(id: number): void;
  /**
   * Watches a pipe's write end for its reader going away: onHangup() once, when it does. fd stays
   * the caller's, but the watch polls a dup of it: the reader sees EOF only once fd is closed
   * and the watch ended (fired, or unwatch()).
   * Returns the watch's id.
   */
  watchHangup(fd: number, onHangup: () => void): number;
  /** Ends a watch with no callback; one that fired already is a no-op. */
  unwatch(id: number): void;
  /**
   * Moves bytes from one pipe or socket to another on the loop, with no JS per chunk: `bytes` of
   * them (-1: until EOF), then onDone(null, moved); or onDone('ESHORT' | 'ETIMEDOUT' | errno name,
   * moved) when the source ended first, nothing moved for idleMs (0: no limit), or a read or write
   * failed. With `chunked`, each read is written as one HTTP/1.1 chunk (never the last, empty one).
   * Both fds stay the caller's: the pump works on dups, closed before onDone. Returns its id.
   */
  pump(fromFd: number, toFd: number, bytes: number, idleMs: number, onDone: (error: string | null, moved: number) => void, chunked?: boolean): number;
  /** Ends a pump with no callback; a finished pump's id is a no-op. */
  cancelPump(id: number): void;
  /** One non-blocking write; throws with .code EAGAIN when the pipe is full. */
  tryWrite(fd: number, body: Buffer): number;
  /** True for a pipe or socket (pollable by libuv); with setNonBlocking, also sets O_NONBLOCK on it. */
  pollable(fd: number, setNonBlocking?: boolean): boolean;
  /** fstat's st_size. */
  fileSize(fd: number): number;
  close(fd: number): void;
  /**
   * glibc's M_TRIM_THRESHOLD and M_MMAP_THRESHOLD for the whole process (see util/keep-freed-heap.ts).
   * Returns whether the C library took them: false off glibc.
   */
  keepFreedHeap(trimBytes: number, mmapBytes: number): boolean;
}

export interface ErrnoError extends Error {
  code: string;
  errno?: number;
  path?: string;
}

// dist/sbus/native.js (and src/sbus/native.ts under vitest) → <package>/build/Release/.
const here = path.dirname(fileURLToPath(import.meta.url));
const addonPath =
  process.env.SANDLET_NATIVE_ADDON ?? path.resolve(here, '..', '..', 'build', 'Release', 'sandlet_sbus.node');

function load(): NativeSbus {
  try {
    return createRequire(import.meta.url)(addonPath) as NativeSbus;
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(
      `cannot load sandlet's native addon at ${addonPath} (${reason}); run \`npm install\` or \`npm run build\``,
    );
  }
}

export const native: NativeSbus = load();

/** Closes fds that this code owns, never throwing: used on cleanup paths. */
export function closeQuietly(fds: Iterable<number | undefined>): void {
  for (const fd of fds) {
    if (fd === undefined || fd < 0) continue;
    try {
      native.close(fd);
    } catch {
      // already closed: nothing more to release
    }
  }
}
