// A real `sandlet serve` app in this process: temp root, Unix socket and a loopback port, one
// token per role, the samples and test fixtures deployed.
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import pino from 'pino';
import type { SandletConfigInput } from '../../src/config.js';
import { startServer, type SandletServer } from '../../src/server/server.js';
import { createToken } from '../../src/server/tokens.js';
import type { Gateway } from '../../src/gateway.js';
import { testGateway } from './gateway.js';

export interface TestServer {
  gateway: Gateway;
  server: SandletServer;
  root: string;
  socket: string;
  port: number;
  tokens: { invoke: string; scoped: string; operate: string; admin: string };
  /** Everything the server logged, as written. */
  logs: string[];
  close: () => Promise<void>;
}

export async function startTestServer(config: SandletConfigInput = {}): Promise<TestServer> {
  const logs: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(line) });
  const { gateway, root, close } = testGateway(config);
  const tokensFile = path.join(root, 'tokens.json');
  const tokens = {
    invoke: (await createToken(tokensFile, 'invoke')).token,
    scoped: (await createToken(tokensFile, 'invoke', ['s1'])).token,
    operate: (await createToken(tokensFile, 'operate')).token,
    admin: (await createToken(tokensFile, 'admin')).token,
  };
  const socket = path.join(root, 'api.sock');
  const server = await startServer({
    gateway,
    config: { ...gateway.config, listen_socket: socket, listen_tcp: '127.0.0.1:0', tokens_file: tokensFile },
    logger,
  });
  const port = Number(server.addresses.find((a) => a.startsWith('http://'))!.split(':').at(-1));
  return {
    gateway,
    server,
    root,
    socket,
    port,
    tokens,
    logs,
    close: async () => {
      await server.close({ drainMs: 2000, stopSandboxes: true });
      await close();
    },
  };
}

export interface CallOptions {
  token?: string;
  headers?: Record<string, string>;
  body?: Buffer | string | Readable;
  via?: 'unix' | 'tcp';
  /** TCP only: the client's address (any 127.x.y.z), to be a different peer. */
  localAddress?: string;
}

export interface CallResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Set when the response broke off (connection reset mid-body). */
  error?: Error;
}

export function call(s: TestServer, method: string, urlPath: string, opts: CallOptions = {}): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const headers = { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers };
    const target = opts.via === 'tcp' || opts.localAddress ? { host: '127.0.0.1', port: s.port, localAddress: opts.localAddress } : { socketPath: s.socket };
    const req = http.request({ ...target, method, path: urlPath, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', (error) => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), error }));
    });
    req.on('error', reject);
    const body = opts.body;
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

export function json(r: CallResult): Record<string, unknown> {
  return JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;
}

/** A metric's value from /metrics (0 when the line is absent). */
export async function metric(s: TestServer, name: string): Promise<number> {
  const text = (await call(s, 'GET', '/metrics', { token: s.tokens.operate })).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

export interface RawConnection {
  socket: net.Socket;
  /** Everything the server sent. */
  received: () => string;
  /** Resolves when the server (or anyone) closed the connection. */
  closed: Promise<void>;
}

/** A bare connection, for clients that misbehave below HTTP (half-open, stalled, oversized). */
export async function rawConnect(s: TestServer, via: 'unix' | 'tcp' = 'tcp', send?: string | Buffer): Promise<RawConnection> {
  const socket = via === 'tcp' ? net.connect(s.port, '127.0.0.1') : net.connect(s.socket);
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
  socket.on('error', () => {}); // a reset is one way the server closes it
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  if (send !== undefined) socket.write(send);
  return { socket, received: () => text, closed };
}
