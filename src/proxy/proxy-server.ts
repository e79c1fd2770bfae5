// The front door's request routing: every request goes to the object store behind it, except those
// that ask for a storlet. Plain node:http (not fastify): a proxy must stream bodies in both
// directions untouched, with nothing parsed or buffered on the way.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isSandletError, oneLine } from '../errors.js';
import { SWIFT_ROUTES } from '../names.js';
import { statusOf } from '../http/error-status.js';
import { forward } from './forward.js';
import type { ProxyMetrics } from './proxy-metrics.js';
import { sendText } from './relay.js';
import type { S3Door } from './s3/s3-door.js';
import { signatureKind } from './s3/sigv4-verify.js';
import type { SwiftDoor } from './swift/swift-door.js';
import type { Upstream } from './upstream.js';

export interface ProxyHandlerOptions {
  upstream: Upstream;
  swift: SwiftDoor;
  /** S3 requests to an access point; other S3 requests pass through. */
  s3?: S3Door;
  metrics: ProxyMetrics;
  logger: Logger;
  /** Counts requests in flight, so `sandlet serve` drains the front door with its API. */
  inflight?: { enter(): void; leave(): void };
}

/**
 * The request handler of the proxy listener. Connection bounds (cap, header and idle-body
 * deadlines, the parser's refusals of malformed or ambiguous framing) are the listeners' own
 * (src/server/listeners.ts), shared with sandlet's API.
 */
export function proxyHandler(opts: ProxyHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    // An upload the answer did not need (Swift refused it, a storlet stopped reading) is read to
    // its end and dropped, so the client is not left blocked mid-body on a kept-alive connection.
    res.once('finish', () => {
      if (!req.complete && !req.destroyed) {
        req.unpipe();
        req.removeAllListeners('data');
        req.resume();
      }
    });
    if (opts.inflight) {
      const counter = opts.inflight;
      counter.enter();
      res.once('close', () => counter.leave());
    }
    void handle(req, res, opts);
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: ProxyHandlerOptions): Promise<void> {
  const url = req.url ?? '/';
  if (!url.startsWith('/')) return sendText(res, 400, 'the request target must be a path');
  const q = url.indexOf('?');
  const pathname = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  const query = new URLSearchParams(rawQuery);
  // Swift's own paths are never an access point (those names are refused); anything else whose
  // bucket is an access point's name is the S3 door's, signed or not (it answers S3 errors).
  if (opts.s3 && !SWIFT_ROUTES.has(pathname.split('/', 2)[1]!) && (await opts.s3.handle(req, res, pathname, rawQuery, query))) return;
  try {
    if (await opts.swift.handle(req, res, pathname, query)) return;
  } catch (err) {
    const { status } = statusOf(err);
    if (!isSandletError(err) || status >= 500) opts.logger.warn({ err: oneLine(err) }, 'front door request failed');
    req.resume();
    return sendText(res, status, oneLine(err), { connection: 'close' });
  }
  const outcome = await forward(req, res, opts.upstream);
  opts.metrics.passthrough(signatureKind(req.headers, query) === 'none' ? 'swift' : 's3', outcome);
}
