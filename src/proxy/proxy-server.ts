// The front door's HTTP server: every request goes to the object store behind it, except those that
// ask for a storlet. Plain node:http (not fastify): a proxy must stream bodies in both directions
// untouched, with nothing parsed or buffered on the way.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isSandletError, oneLine } from '../errors.js';
import { statusOf } from '../http/error-status.js';
import { forward } from './forward.js';
import type { ProxyMetrics } from './proxy-metrics.js';
import { sendText } from './relay.js';
import type { S3Door } from './s3/s3-door.js';
import { signatureKind } from './s3/sigv4-verify.js';
import type { SwiftDoor } from './swift/swift-door.js';
import type { Upstream } from './upstream.js';

export interface ProxyServerOptions {
  upstream: Upstream;
  swift: SwiftDoor;
  /** S3 requests to an access point; other S3 requests pass through. */
  s3?: S3Door;
  metrics: ProxyMetrics;
  logger: Logger;
  /** Longest wait for a request's headers (slow-header clients). */
  headersTimeoutMs: number;
  /** Longest a connection may stay silent while a request is in progress. */
  idleTimeoutMs: number;
  maxHeaderBytes?: number;
}

export function createProxyServer(opts: ProxyServerOptions): http.Server {
  const server = http.createServer({
    headersTimeout: opts.headersTimeoutMs,
    requestTimeout: 0, // uploads and downloads may take as long as they keep moving
    keepAliveTimeout: 5_000,
    maxHeaderSize: opts.maxHeaderBytes ?? 16 * 1024,
    // Node's parser already refuses Content-Length together with Transfer-Encoding, duplicate
    // lengths and malformed chunking (no request smuggling); never run it leniently.
    insecureHTTPParser: false,
  });
  server.on('connection', (socket) => socket.setTimeout(opts.idleTimeoutMs, () => socket.destroy()));
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    void handle(req, res, opts);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || (err as { bytesParsed?: number }).bytesParsed === undefined) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const text = `${status === 431 ? 'request headers are too large' : `bad request: ${(err as { reason?: string }).reason ?? err.message}`}\n`;
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
  });
  return server;
}

const SWIFT_PATH = /^\/(v1|v1\.0|auth|info|healthcheck)(\/|$)/;

async function handle(req: IncomingMessage, res: ServerResponse, opts: ProxyServerOptions): Promise<void> {
  const url = req.url ?? '/';
  if (!url.startsWith('/')) return sendText(res, 400, 'the request target must be a path');
  const q = url.indexOf('?');
  const pathname = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  const query = new URLSearchParams(rawQuery);
  // Swift's own paths are never an access point (those names are refused); anything else whose
  // bucket is an access point's name is the S3 door's, signed or not (it answers S3 errors).
  if (opts.s3 && !SWIFT_PATH.test(pathname)) {
    let route;
    try {
      route = opts.s3.route(req, pathname);
    } catch (err) {
      opts.logger.warn({ err: oneLine(err) }, 'the access points file cannot be read');
      return sendText(res, 500, 'the access points file cannot be read', { connection: 'close' });
    }
    if (route) return opts.s3.serve(req, res, route, pathname, rawQuery, query);
  }
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
