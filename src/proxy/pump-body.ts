// Response bodies moved by the addon's pump, socket-ward, with no JS per chunk. On a 2-core
// machine that shares its CPUs with the object store, Node's streams cost a relay about twice
// what a plain read/write loop does; the pump is that loop.
//
// forwardGet: a passthrough GET. It needs the upstream's socket, which undici does not expose, so
// these GETs go through node:http. When the response announces a large body (Content-Length, no
// transfer coding), the upstream socket stops being read at once, inside the 'response' event;
// the parser then pushes what it already read to the response object, which is written to the
// client after the headers; the rest is pumped, and the upstream socket is closed afterwards
// (never reused: its parser never saw those bytes). Anything else is relayed as a stream.
//
// sendOutput: a storlet's output, pumped from its output pipe as HTTP/1.1 chunks.
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { oneLine, SandletError } from '../errors.js';
import type { InvokeResult } from '../gateway.js';
import { OutputStream } from '../invocation/output-stream.js';
import { native } from '../sbus/native.js';
import type { ForwardOutcome } from './forward.js';
import { endToEnd } from './hop-by-hop.js';
import { clientGone, hasResponseBody, pipeBody, sendStream, sendText } from './relay.js';
import { readOutputHead, sendWholeHead, type OutputHead } from './small-body.js';
import type { Upstream } from './upstream.js';

/** Bodies at least this large are pumped; smaller ones are not worth giving up a kept-alive socket. */
export const PUMP_MIN_BYTES = 1024 * 1024;

/** A libuv stream handle as Node keeps it on a net.Socket (not a public API: checked before use). */
interface StreamHandle {
  fd?: number;
  readStop?: () => number;
}

function handleOf(socket: Socket | null | undefined): StreamHandle | undefined {
  return (socket as unknown as { _handle?: StreamHandle } | null | undefined)?._handle ?? undefined;
}

/** The fd of a plain (not TLS) connected socket, or undefined. */
function plainFd(socket: Socket | null | undefined): number | undefined {
  if (!socket || (socket as { encrypted?: boolean }).encrypted) return undefined;
  const fd = handleOf(socket)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Resolves once Node's own writes to the response's socket are out (the pump writes there itself); false if it closed. */
async function flushed(res: ServerResponse): Promise<boolean> {
  await new Promise((r) => setImmediate(r)); // a first write is corked until the next tick
  const sock = res.socket;
  while (sock && sock.writableLength > 0 && !sock.destroyed) await new Promise((r) => sock.once('drain', r).once('close', r));
  return !!sock && !sock.destroyed;
}

function pumpableLength(up: IncomingMessage, method: string | undefined): number | undefined {
  if (!hasResponseBody(method, up.statusCode ?? 0) || up.headers['transfer-encoding'] !== undefined) return undefined;
  const raw = up.headers['content-length'];
  const len = raw === undefined ? NaN : Number(raw);
  return Number.isSafeInteger(len) && len >= PUMP_MIN_BYTES ? len : undefined;
}

export function forwardGet(req: IncomingMessage, res: ServerResponse, upstream: Upstream): Promise<ForwardOutcome> {
  return new Promise<ForwardOutcome>((resolve) => {
    const gone = clientGone(res);
    let answered = false;
    let upReq: ClientRequest;
    const settle = (outcome: ForwardOutcome): void => {
      gone.signal.removeEventListener('abort', onGone);
      resolve(outcome);
    };
    const onGone = (): void => {
      upReq.destroy();
      if (!answered) settle('aborted');
    };
    const onResponse = (up: IncomingMessage): void => {
      answered = true;
      const length = pumpableLength(up, req.method);
      const upFd = plainFd(up.socket);
      const clientFd = plainFd(res.socket);
      const upHandle = handleOf(up.socket);
      if (length === undefined || upFd === undefined || clientFd === undefined || typeof upHandle?.readStop !== 'function') {
        void sendStream(res, up.statusCode ?? 502, endToEnd(up.headers), up).then(settle);
        return;
      }
      // Now, before the loop reads the socket again: every byte read so far reaches `up`.
      upHandle.readStop();
      up.socket.setTimeout(0);
      up.on('error', () => {}); // the pump reports how the body ended
      setImmediate(() => {
        pumpBody(res, up, upReq, length, upFd, clientFd, upstream, gone.signal).then(settle, () => {
          // An answer node:http will not write, or no fd for the pump: both ends go.
          res.destroy();
          upReq.destroy();
          settle('failed_midstream');
        });
      });
    };
    try {
      upReq = upstream.rawGet(req.url ?? '/', endToEnd(req.headers), onResponse);
    } catch (err) {
      // node:http refuses what it cannot send (a header it deems invalid): the request's fault.
      sendText(res, 400, `The request cannot be forwarded: ${(err as Error).message}`);
      return settle('upstream_error');
    }
    upReq.on('error', (err) => {
      if (answered) return; // the body's own failure is handled where it is read
      if (gone.signal.aborted) return settle('aborted');
      sendText(res, 502, `The object store at ${upstream.origin} could not be reached: ${err.message}`);
      settle('upstream_error');
    });
    gone.signal.addEventListener('abort', onGone, { once: true });
  });
}

async function pumpBody(
  res: ServerResponse,
  up: IncomingMessage,
  upReq: ClientRequest,
  length: number,
  upFd: number,
  clientFd: number,
  upstream: Upstream,
  gone: AbortSignal,
): Promise<ForwardOutcome> {
  const done = (outcome: ForwardOutcome): ForwardOutcome => {
    // Its parser never saw the pumped bytes: the upstream connection is not reused.
    up.on('error', () => {});
    upReq.destroy();
    return outcome;
  };
  const chunks: Buffer[] = [];
  let prefix = 0;
  for (let c: Buffer | null; (c = up.read() as Buffer | null) !== null; ) {
    chunks.push(c);
    prefix += c.length;
  }
  if (gone.aborted) return done('aborted');
  res.writeHead(up.statusCode ?? 502, endToEnd(up.headers));
  if (prefix > length) {
    res.destroy();
    return done('failed_midstream');
  }
  res.flushHeaders();
  for (const c of chunks) res.write(c);
  if (!(await flushed(res)) || gone.aborted) return done('aborted');
  const error = await new Promise<string | null>((resolve) => {
    const id = native.pump(upFd, clientFd, length - prefix, upstream.timeoutMs, resolve);
    gone.addEventListener('abort', () => {
      native.cancelPump(id);
      resolve('aborted');
    }, { once: true });
  });
  if (error === null) {
    res.end();
    return done('ok');
  }
  // The client's socket is cut so it sees a broken response rather than a short one.
  res.destroy();
  if (error === 'aborted' || gone.aborted) return done('aborted');
  // A write that failed is the client gone; a read that failed or ended early is the upstream's.
  return done(error === 'EPIPE' || error === 'ECONNRESET' ? 'aborted' : 'failed_midstream');
}

/**
 * Sends a storlet's output as the response body. Nothing goes out before the output's first byte
 * (small-body.ts: readOutputHead): a failure until then rejects, nothing was sent, and the caller
 * answers with an error. An output that ends while held leaves in one write with its
 * Content-Length. Else the head and the bytes read so far go out, then the rest: with `large`
 * (the input was large, so the output likely is) pumped from the output pipe as HTTP/1.1 chunks
 * when the response is chunked and the client's socket is plain, else streamed. Resolves with how
 * it ended; a failure after the headers cuts the client's connection.
 */
export async function sendOutput(res: ServerResponse, status: number, headers: Record<string, string | string[]>, body: Readable, large: boolean): Promise<'ok' | 'aborted' | 'failed_midstream'> {
  if (headers['content-length'] !== undefined) return sendStream(res, status, headers, body);
  const fd = large && body instanceof OutputStream ? plainFd(res.socket) : undefined;
  let head: OutputHead;
  try {
    head = await readOutputHead(body);
  } catch (err) {
    if ((err as { code?: string }).code === 'ECANCELLED') return 'aborted'; // the client left
    throw err;
  }
  if (head.ended) {
    sendWholeHead(res, status, headers, head);
    return 'ok';
  }
  res.writeHead(status, headers);
  // Node frames the body in chunks for an HTTP/1.1 client (an HTTP/1.0 one gets a stream): the
  // pump can then go on framing the rest.
  const rest = fd !== undefined && (res as { chunkedEncoding?: unknown }).chunkedEncoding === true ? (body as OutputStream).handOff() : undefined;
  for (const c of head.chunks) res.write(c);
  if (rest === undefined) return pipeBody(res, body);
  for (const c of rest) res.write(c);
  // Its failures reach us through pumpTo(); no 'error' may go unheard.
  body.on('error', () => {});
  if (!(await flushed(res))) {
    body.destroy();
    return 'aborted';
  }
  try {
    await (body as OutputStream).pumpTo(fd!, true);
  } catch (err) {
    res.destroy(); // the client sees a broken response, never a short one
    body.destroy(); // no-op when it failed itself; else (the pump could not start) its task goes
    return (err as { code?: string }).code === 'ECANCELLED' ? 'aborted' : 'failed_midstream';
  }
  res.end(); // the last chunk
  return 'ok';
}

/** An upstream GET's answer as node:http gave it; `pumpable` when pipeInput() may move its body. */
export interface RawSource {
  statusCode: number;
  headers: IncomingMessage['headers'];
  body: IncomingMessage;
  pumpable: boolean;
  request: ClientRequest;
}

/**
 * A GET of an object that a storlet will read. A large body on a plain socket stops being read by
 * Node at once (see forwardGet), so pipeInput() can hand it to the pump; anything else is read as
 * a stream. Rejects when the upstream cannot be reached; `signal` aborts the request.
 */
export function getSource(upstream: Upstream, path: string, headers: Record<string, string | string[]>, signal: AbortSignal): Promise<RawSource> {
  return new Promise<RawSource>((resolve, reject) => {
    let request: ClientRequest;
    try {
      request = upstream.rawGet(path, headers, (up) => {
        const handle = handleOf(up.socket);
        const pumpable = pumpableLength(up, 'GET') !== undefined && plainFd(up.socket) !== undefined && typeof handle?.readStop === 'function';
        if (pumpable) {
          handle!.readStop!();
          up.socket.setTimeout(0);
          up.on('error', () => {}); // the pump reports how the body ended
        }
        resolve({ statusCode: up.statusCode ?? 502, headers: up.headers, body: up, pumpable, request });
      });
    } catch (err) {
      reject(err);
      return;
    }
    request.on('error', reject); // settles nothing once answered: the body's errors are the reader's
    if (signal.aborted) request.destroy();
    else signal.addEventListener('abort', () => request.destroy(), { once: true });
  });
}

/**
 * Moves a pumpable source's body into a new pipe whose read end a storlet gets as its input: what
 * node:http already read first, then the rest by the pump, which closes the write end when the
 * whole body is in. `onFailed` hears of a body that broke off (the write end then stays open until
 * `close()`, so the storlet never sees a clean end of a short object). `close()` releases all:
 * the read end, a pump still running, the write end and the upstream request.
 */
async function pipeInput(src: RawSource, pipeBytes: number, idleMs: number, onFailed: (err: Error) => void): Promise<{ fd: number; closeReadEnd(): void; close(): void }> {
  await new Promise((r) => setImmediate(r)); // what the parser had read is in `src.body` now
  const length = Number(src.headers['content-length']);
  const upFd = plainFd(src.body.socket)!;
  const [r, w] = native.pipe(pipeBytes);
  let readOpen = true;
  let writeOpen = true;
  let pumpId: number | undefined;
  const closeWrite = (): void => {
    if (writeOpen) native.close(w);
    writeOpen = false;
  };
  const closeReadEnd = (): void => {
    if (readOpen) native.close(r);
    readOpen = false;
  };
  const close = (): void => {
    if (pumpId !== undefined) native.cancelPump(pumpId);
    pumpId = undefined;
    closeReadEnd();
    closeWrite();
    src.body.on('error', () => {});
    src.request.destroy();
  };
  let prefix = 0;
  try {
    // At most what one socket read brought (64 KiB), into a pipe of pipeBytes nobody reads yet.
    for (let c: Buffer | null; (c = src.body.read() as Buffer | null) !== null; prefix += c.length) writeAll(w, c);
    if (prefix > length) throw new Error(`the object store sent more than its Content-Length (${length})`);
  } catch (err) {
    close();
    throw err;
  }
  const onPumped = (err: string | null, moved: number): void => {
    pumpId = undefined;
    if (err === null || err === 'EPIPE') {
      // Done; or the storlet closed its input, which it may (EPIPE comes only from the pipe side).
      closeWrite();
      src.request.destroy(); // its parser never saw these bytes: not reused
    } else {
      onFailed(new Error(err === 'ETIMEDOUT' ? `the object store sent nothing for ${idleMs} ms` : `the object store broke off the object after ${prefix + moved} of ${length} bytes (${err})`));
    }
  };
  try {
    pumpId = native.pump(upFd, w, length - prefix, idleMs, onPumped);
  } catch (err) {
    close(); // no fd for its dups (EMFILE): nothing may stay open
    throw err;
  }
  return { fd: r, closeReadEnd, close };
}

/**
 * Runs `invoke` on a pumpable source: its body goes into the storlet's input pipe by the pump.
 * Should the body break off, the invocation is stopped (ESTORE, 502) before the storlet can take
 * a short object for a whole one. Everything is released when the output is over.
 */
export async function invokeOnPumped(
  src: RawSource,
  pipeBytes: number,
  idleMs: number,
  signal: AbortSignal,
  invoke: (input: { fd: number }, signal: AbortSignal) => Promise<InvokeResult>,
): Promise<InvokeResult> {
  const broke = new AbortController();
  let why: Error | undefined;
  const brokeOff = (): SandletError => new SandletError('ESTORE', oneLine(why), { status: 502 });
  const piped = await pipeInput(src, pipeBytes, idleMs, (err) => {
    why = err;
    broke.abort(err);
  });
  try {
    const result = await invoke({ fd: piped.fd }, AbortSignal.any([signal, broke.signal]));
    piped.closeReadEnd(); // the agent has its own copy
    // The pump may still be filling the pipe: released when the output is over, however it ends.
    result.body.once('close', piped.close);
    if (why) result.body.destroy(brokeOff());
    return result;
  } catch (err) {
    piped.close();
    throw why ? brokeOff() : err;
  }
}

function writeAll(fd: number, bytes: Buffer): void {
  for (let off = 0; off < bytes.length; ) off += native.tryWrite(fd, bytes.subarray(off));
}
