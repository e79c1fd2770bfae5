// The listeners of `sandlet serve`: bound before anything else starts, so a second server on an
// address in use fails before it touches the first one's sandboxes or socket file. Every
// connection is bounded: a cap on open connections, a deadline for the request headers, and an
// idle deadline for a request body the client stops sending.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { Logger } from 'pino';
import type { SandletConfig } from '../config.js';
import { SandletError } from '../errors.js';

/** Node's default, stated here so the README and the 431 answer name it. */
export const MAX_HEADER_BYTES = 16 * 1024;

/** Read at scrape time by the metrics. */
export class ConnectionStats {
  open = 0;
  refused = 0;
  readonly timedOut = { headers: 0, body: 0 };
}

export interface Listeners {
  /** `unix:/path` and/or `http://host:port`. */
  addresses: string[];
  servers: http.Server[];
  stats: ConnectionStats;
  /** Hands requests to the app; requests that arrived before wait for it. */
  serve(handler: http.RequestListener): void;
  /** Stops accepting new connections and closes idle ones; requests in flight go on. */
  stopAccepting(): void;
  closeAllConnections(): void;
  /** Closes everything and removes the socket file this server created. */
  close(): void;
}

type ListenConfig = Pick<SandletConfig, 'listen_socket' | 'listen_socket_mode' | 'listen_tcp' | 'max_connections' | 'header_timeout_ms' | 'body_idle_timeout_ms'>;

/** One JSON line, sandlet's error shape, written straight to a socket the HTTP parser gave up on. */
function rawError(status: number, message: string): string {
  const body = JSON.stringify({ error: message, code: 'EHTTP' });
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

export async function bindListeners(config: ListenConfig, logger?: Logger): Promise<Listeners> {
  const { listen_socket: socketPath, listen_tcp: tcp } = config;
  if (!socketPath && !tcp) throw new SandletError('EBADCONFIG', 'nothing to listen on: set listen_socket and/or listen_tcp');
  const stats = new ConnectionStats();
  let app: http.RequestListener | undefined;
  const waiting: [http.IncomingMessage, http.ServerResponse][] = [];

  const onClientError = (err: NodeJS.ErrnoException, socket: net.Socket): void => {
    logger?.debug({ code: err.code }, 'closing a connection the HTTP parser gave up on');
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    let status = 400;
    let message = `the request is not valid HTTP (${err.code ?? 'parse error'})`;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      stats.timedOut.headers++;
      status = 408;
      message = `the request headers did not arrive within ${config.header_timeout_ms} ms (header_timeout_ms)`;
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      message = `the request headers exceed ${MAX_HEADER_BYTES / 1024} KiB`;
    }
    // end(), not destroy(): a client still sending its headers would get a reset instead of the answer.
    if (socket.writable) socket.end(rawError(status, message));
    socket.destroySoon();
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    guardBody(req, res, config.body_idle_timeout_ms, stats, logger);
    if (app) app(req, res);
    else waiting.push([req, res]);
  };

  const onConnection = (socket: net.Socket): void => {
    if (stats.open >= config.max_connections) {
      stats.refused++;
      logger?.debug({ open: stats.open }, 'refusing a connection: max_connections are open');
      socket.destroy();
      return;
    }
    stats.open++;
    socket.once('close', () => stats.open--);
  };

  const make = (): http.Server => {
    const s = http.createServer({
      headersTimeout: config.header_timeout_ms,
      // Invocations may stream for long: no deadline on a whole request, only on its headers and an idle body.
      requestTimeout: 0,
      maxHeaderSize: MAX_HEADER_BYTES,
      // How often Node looks for connections past the header deadline.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(config.header_timeout_ms / 4))),
      keepAliveTimeout: 5000,
    });
    s.on('connection', onConnection);
    s.on('clientError', onClientError);
    s.on('request', onRequest);
    return s;
  };

  const servers: http.Server[] = [];
  const addresses: string[] = [];
  let ownSocket = false;
  const close = (): void => {
    for (const s of servers) {
      if (s.listening) s.close();
      s.closeAllConnections();
    }
    if (ownSocket) fs.rmSync(socketPath, { force: true });
    ownSocket = false;
  };
  try {
    if (socketPath) {
      await removeStaleSocket(socketPath);
      fs.mkdirSync(socketPath.slice(0, socketPath.lastIndexOf('/')) || '/', { recursive: true });
      const s = make();
      servers.push(s);
      await listen(s, { path: socketPath }, socketPath);
      ownSocket = true;
      fs.chmodSync(socketPath, parseInt(config.listen_socket_mode, 8));
      addresses.push(`unix:${socketPath}`);
    }
    if (tcp) {
      const s = make();
      servers.push(s);
      const at = tcp.lastIndexOf(':');
      const host = tcp.slice(0, at).replace(/^\[|\]$/g, '');
      await listen(s, { host, port: Number(tcp.slice(at + 1)) }, tcp);
      const addr = s.address() as net.AddressInfo;
      addresses.push(`http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`);
    }
  } catch (err) {
    // A second address that cannot be bound must not leave the first one listening.
    close();
    throw err;
  }
  return {
    addresses,
    servers,
    stats,
    serve(handler) {
      app = handler;
      for (const [req, res] of waiting.splice(0)) handler(req, res);
    },
    stopAccepting() {
      for (const s of servers) {
        s.close();
        s.closeIdleConnections();
      }
    },
    closeAllConnections() {
      for (const s of servers) s.closeAllConnections();
    },
    close,
  };
}

/**
 * Closes the connection of a request whose body stops arriving for `ms`. Only the client's
 * silence counts: while received bytes wait for a slow reader (a storlet, a spool), the clock is
 * re-armed instead.
 */
function guardBody(req: http.IncomingMessage, res: http.ServerResponse, ms: number, stats: ConnectionStats, logger?: Logger): void {
  // A request that announces no body has none to wait for.
  if (req.complete || (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined)) return;
  // Silence is the client's fault only while sandlet reads. When its consumer (a storlet) is slow,
  // the body waits in the request's buffer and the socket is paused; once reading resumes, the
  // client gets a whole period of it before the silence counts.
  let weWereSlow = false;
  req.setTimeout(ms, () => {
    if (req.complete) return;
    const slowNow = req.readableLength > 0 || req.socket.isPaused();
    if (slowNow || weWereSlow) {
      weWereSlow = slowNow;
      req.setTimeout(ms);
      return;
    }
    stats.timedOut.body++;
    logger?.info({ timeoutMs: ms }, 'request body stopped arriving; closing the connection');
    req.socket.destroy();
  });
  // Node closes a socket whose timeout nobody handles; once the body is in, a quiet socket (a
  // storlet still computing) is no fault of the client.
  res.on('timeout', () => {});
  req.once('end', () => {
    if (!res.writableEnded) req.socket.setTimeout(0);
  });
}

function listen(server: http.Server, where: { path: string } | { host: string; port: number }, label: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException): void => {
      reject(err.code === 'EADDRINUSE' ? new SandletError('EBADCONFIG', `cannot listen on ${label}: the address is in use (another sandlet serve?)`) : err);
    };
    server.once('error', fail);
    server.listen(where, () => {
      server.off('error', fail);
      resolve();
    });
  });
}

/** A socket file nobody answers on is left from a crash; one that answers belongs to a live server. */
async function removeStaleSocket(file: string): Promise<void> {
  if (!fs.existsSync(file)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(file);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new SandletError('EBADCONFIG', `cannot listen on ${file}: another server already listens there`);
  fs.rmSync(file, { force: true });
}
