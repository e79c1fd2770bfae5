// Moving bodies between the client and the upstream with backpressure, and ending each exchange
// the right way: a client that leaves aborts the upstream request; a body that fails after the
// headers went out cuts the client's connection (never a clean, short body).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import { endToEnd } from './hop-by-hop.js';
import type { UpstreamResponse } from './upstream.js';

/** An AbortSignal that fires when the client goes away before its response was sent whole. */
export function clientGone(res: ServerResponse): AbortController {
  const ac = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) ac.abort(new Error('the client went away'));
  });
  return ac;
}

/** Whether a response to this request and status carries a body. */
export function hasResponseBody(method: string | undefined, status: number): boolean {
  return method !== 'HEAD' && status !== 204 && status !== 304 && !(status >= 100 && status < 200);
}

/** Whether the request announces a body (a length above zero, or a transfer coding). */
export function hasRequestBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}

/** Streams `body` as the response after `status` and `headers`; resolves with how it ended. */
export function sendStream(res: ServerResponse, status: number, headers: Record<string, string | string[]>, body: Readable): Promise<'ok' | 'aborted' | 'failed_midstream'> {
  res.writeHead(status, headers);
  return pipeBody(res, body);
}

/** Streams `body` into a response whose head is written; resolves with how it ended. */
export function pipeBody(res: ServerResponse, body: Readable): Promise<'ok' | 'aborted' | 'failed_midstream'> {
  return new Promise((resolve) => {
    pipeline(body, res, (err) => {
      if (!err) return resolve('ok');
      // The client's socket is cut so it sees a broken response rather than a short one.
      res.destroy();
      resolve(res.writableFinished ? 'ok' : body.errored ? 'failed_midstream' : 'aborted');
    });
  });
}

/** Relays an upstream response as it is (end-to-end headers, streamed body). */
export function relayResponse(req: IncomingMessage, res: ServerResponse, up: UpstreamResponse, extraHeaders: Record<string, string> = {}): Promise<'ok' | 'aborted' | 'failed_midstream'> {
  const headers = { ...endToEnd(up.headers), ...extraHeaders };
  if (!hasResponseBody(req.method, up.statusCode)) {
    up.body.dump().catch(() => {});
    res.writeHead(up.statusCode, headers);
    res.end();
    return Promise.resolve('ok');
  }
  return sendStream(res, up.statusCode, headers, up.body);
}

/** A short plain-text answer (Swift answers errors in plain text). */
export function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${text.replace(/\s*\n\s*/g, ' ')}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), ...headers });
  res.end(body);
}
