// A passthrough GET whose large body is moved by the addon, socket to socket, with no JS per
// chunk. On a 2-core machine that shares its CPUs with the object store, Node's streams cost a
// passthrough about twice what a plain read/write loop does; the pump is that loop.
//
// It needs the upstream's socket, which undici does not expose, so these GETs go through
// node:http. When the response announces a large body (Content-Length, no transfer coding), the
// upstream socket stops being read at once, inside the 'response' event; the parser then pushes
// what it already read to the response object, which is written to the client after the headers;
// the rest is pumped, and the upstream socket is closed afterwards (never reused: its parser
// never saw those bytes). Anything else is relayed as a stream.
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { native } from '../sbus/native.js';
import type { ForwardOutcome } from './forward.js';
import { endToEnd } from './hop-by-hop.js';
import { clientGone, hasResponseBody, sendStream, sendText } from './relay.js';
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
      setImmediate(() => void pumpBody(res, up, upReq, length, upFd, clientFd, upstream, gone.signal).then(settle));
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
  // The pump writes to the socket itself: Node's own writes must be out first.
  await new Promise((r) => setImmediate(r));
  const sock = res.socket;
  while (sock && sock.writableLength > 0 && !sock.destroyed) await new Promise((r) => sock.once('drain', r).once('close', r));
  if (gone.aborted || !sock || sock.destroyed) return done('aborted');
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
