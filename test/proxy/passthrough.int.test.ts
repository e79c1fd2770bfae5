import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { startFrontDoor, type FrontDoor } from '../../src/proxy/front-door.js';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { PUMP_MIN_BYTES } from '../../src/proxy/pump-body.js';
import { tempDir } from '../helpers/fs.js';
import { requireSwift, skipSwift, startSwift, swiftToken, SWIFT_USERS, type TestSwift } from '../helpers/swift.js';

async function door(upstream: string, extra: { upstream_timeout_ms?: number } = {}): Promise<{ door: FrontDoor; gateway: Gateway; close: () => Promise<void> }> {
  const root = tempDir();
  const config = resolveConfig({ host_root: root.dir, backend: 'process', upstream, proxy_listen: '127.0.0.1:0', ...extra });
  const gateway = createGateway(config, { logger: pino({ level: 'silent' }) });
  const d = await startFrontDoor({ gateway, config, registry: new Registry(), logger: gateway.logger });
  return {
    door: d,
    gateway,
    close: async () => {
      await d.close();
      await gateway.close({ stopSandboxes: true });
      root.cleanup();
    },
  };
}

/** Reads a raw HTTP exchange to its end; `error` when the connection was cut. */
async function rawExchange(url: string, request: string): Promise<{ text: string; error?: string }> {
  const u = new URL(url);
  const s = net.connect(Number(u.port), u.hostname);
  s.write(request); // not end(): a client half-closing first gets no answer from node:http
  let text = '';
  try {
    for await (const chunk of s) text += chunk.toString('latin1');
  } catch (err) {
    return { text, error: (err as Error).message };
  }
  return { text };
}

// Faults a real Swift cannot be made to show on demand: an upstream that dies halfway through a
// body. This stand-in exists only for them.
describe('passthrough against a failing upstream (hand-written stand-in for the fault)', () => {
  let upstream: http.Server;
  let upstreamUrl: string;
  let d: Awaited<ReturnType<typeof door>>;
  const seen: { method: string; url: string; host?: string; hop?: string; closedEarly: boolean }[] = [];

  beforeAll(async () => {
    upstream = http.createServer((req, res) => {
      const rec = { method: req.method!, url: req.url!, host: req.headers.host, hop: req.headers['x-hop'] as string | undefined, closedEarly: false };
      seen.push(rec);
      res.on('close', () => (rec.closedEarly = !res.writableFinished));
      if (req.url === '/short-length') {
        res.writeHead(200, { 'content-length': '1000' });
        res.write('0123456789');
        setTimeout(() => res.destroy(), 20);
      } else if (req.url === '/short-chunked') {
        res.writeHead(200, {});
        res.write('0123456789');
        setTimeout(() => res.destroy(), 20);
      } else if (req.url === '/big-then-dies') {
        // Large enough to be pumped: the addon moves the body, and must cut the client too.
        res.writeHead(200, { 'content-length': String(4 * PUMP_MIN_BYTES) });
        res.write(Buffer.alloc(PUMP_MIN_BYTES + 12345, 2), () => setTimeout(() => res.destroy(), 50));
      } else if (req.url === '/big-then-stalls') {
        res.writeHead(200, { 'content-length': String(4 * PUMP_MIN_BYTES) });
        res.write(Buffer.alloc(PUMP_MIN_BYTES, 3)); // then silence, past the upstream timeout
      } else if (req.url === '/endless') {
        res.writeHead(200, {});
        const pump = (): void => {
          while (res.write(Buffer.alloc(64 * 1024, 1)));
          res.once('drain', pump);
        };
        pump();
      } else {
        req.resume();
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'text/plain', connection: 'x-hop', 'x-hop': 'must not pass', 'keep-alive': 'timeout=5' });
          res.end(`${req.method} ${req.url}`);
        });
      }
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    d = await door(upstreamUrl);
  });
  afterAll(async () => {
    await d?.close();
    upstream.closeAllConnections();
    upstream.close();
  });

  it('forwards method, path, query and Host as received; drops hop-by-hop headers both ways', async () => {
    const res = await rawExchange(d.door.url, 'DELETE /v1/AUTH_x/c/o%20b?multipart-manifest=delete&x=1 HTTP/1.1\r\nHost: swift.example:8080\r\nConnection: x-hop, close\r\nX-Hop: secret\r\nContent-Length: 0\r\n\r\n');
    expect(res.text).toMatch(/^HTTP\/1.1 200/);
    expect(res.text).toContain('DELETE /v1/AUTH_x/c/o%20b?multipart-manifest=delete&x=1');
    expect(res.text.toLowerCase()).not.toContain('x-hop: must not pass');
    expect(res.text.toLowerCase()).not.toContain('keep-alive: timeout=5');
    const rec = seen.find((s) => s.method === 'DELETE')!;
    expect(rec.host).toBe('swift.example:8080');
    expect(rec.hop).toBeUndefined();
  });

  it('cuts the client when the upstream dies mid-body (never a clean short body)', async () => {
    const a = await rawExchange(d.door.url, 'GET /short-length HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(a.text).toMatch(/^HTTP\/1.1 200/);
    const body = a.text.slice(a.text.indexOf('\r\n\r\n') + 4);
    expect(body.length).toBeLessThan(1000); // content-length 1000 announced, connection cut short
    const b = await rawExchange(d.door.url, 'GET /short-chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(b.text).toMatch(/^HTTP\/1.1 200/);
    expect(b.text).not.toMatch(/\r\n0\r\n\r\n$/); // no terminating chunk: the client knows it is broken
    await expect(fetch(`${d.door.url}/short-chunked`).then((r) => r.arrayBuffer())).rejects.toThrow();
  });

  it('cuts the client when the upstream dies or stalls in the middle of a pumped body, and leaks no fd', async () => {
    const fdsBefore = fs.readdirSync('/proc/self/fd').length;
    const a = await rawExchange(d.door.url, 'GET /big-then-dies HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(a.text).toMatch(/^HTTP\/1.1 200/);
    const got = a.text.length - a.text.indexOf('\r\n\r\n') - 4;
    expect(got).toBeGreaterThanOrEqual(PUMP_MIN_BYTES);
    expect(got).toBeLessThan(4 * PUMP_MIN_BYTES);
    const slow = await door(upstreamUrl, { upstream_timeout_ms: 1500 });
    try {
      const b = await rawExchange(slow.door.url, 'GET /big-then-stalls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(b.text).toMatch(/^HTTP\/1.1 200/);
      expect(b.text.length - b.text.indexOf('\r\n\r\n') - 4).toBe(PUMP_MIN_BYTES);
    } finally {
      await slow.close();
    }
    await expect.poll(() => fs.readdirSync('/proc/self/fd').length, { timeout: 5_000 }).toBeLessThanOrEqual(fdsBefore);
  });

  it('aborts the upstream request when the client goes away', async () => {
    const u = new URL(d.door.url);
    const s = net.connect(Number(u.port), u.hostname);
    s.write('GET /endless HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(s, 'data');
    s.destroy();
    const rec = seen.find((x) => x.url === '/endless')!;
    // The proxy closes its upstream request: the stand-in sees its response closed unfinished.
    await expect.poll(() => rec.closedEarly, { timeout: 10_000 }).toBe(true);
  });
});

describe.skipIf(skipSwift)('passthrough against a real Swift', () => {
  let swift: TestSwift;
  let d: Awaited<ReturnType<typeof door>>;
  beforeAll(async () => {
    requireSwift();
    swift = await startSwift();
    d = await door(swift.url);
  });
  afterAll(async () => {
    await d?.close();
    await swift?.stop();
  });

  it('relays large downloads byte for byte (pumped), whole and ranged, on a kept-alive client connection', async () => {
    const token = await swiftToken(d.door.url, SWIFT_USERS.admin);
    await fetch(`${d.door.url}/v1/AUTH_test/pumped`, { method: 'PUT', headers: { 'x-auth-token': token } });
    const body = randomBytes(3 * PUMP_MIN_BYTES + 4321);
    const put = await fetch(`${d.door.url}/v1/AUTH_test/pumped/obj`, { method: 'PUT', headers: { 'x-auth-token': token, 'content-type': 'application/x-test' }, body });
    expect(put.status).toBe(201);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (headers: Record<string, string>) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; socket: unknown }>((resolve, reject) => {
        http.get(`${d.door.url}/v1/AUTH_test/pumped/obj`, { agent, headers: { 'x-auth-token': token, ...headers } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), socket: res.socket }));
          res.on('error', reject);
        }).on('error', reject);
      });
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    try {
      const whole = await get({});
      expect(whole.status).toBe(200);
      expect(whole.headers['content-type']).toBe('application/x-test');
      expect(whole.headers['content-length']).toBe(String(body.length));
      expect(sha(whole.body)).toBe(sha(body));
      const start = 12345;
      const end = start + 2 * PUMP_MIN_BYTES;
      const ranged = await get({ range: `bytes=${start}-${end}` });
      expect(ranged.status).toBe(206);
      expect(ranged.headers['content-range']).toBe(`bytes ${start}-${end}/${body.length}`);
      expect(sha(ranged.body)).toBe(sha(body.subarray(start, end + 1)));
      // The second answer came on the first one's connection: the pump left it in a clean state.
      expect(ranged.socket).toBe(whole.socket);
      const again = await get({});
      expect(sha(again.body)).toBe(sha(body));
    } finally {
      agent.destroy();
    }
  });

  it('a client that leaves mid-download makes Swift see the request end early (499)', async () => {
    const token = await swiftToken(d.door.url, SWIFT_USERS.admin);
    await fetch(`${d.door.url}/v1/AUTH_test/big`, { method: 'PUT', headers: { 'x-auth-token': token } });
    const size = 32 * 1024 * 1024;
    const put = await fetch(`${d.door.url}/v1/AUTH_test/big/obj`, { method: 'PUT', headers: { 'x-auth-token': token }, body: Buffer.alloc(size, 7) });
    expect(put.status).toBe(201);
    const u = new URL(d.door.url);
    const s = net.connect(Number(u.port), u.hostname);
    s.write(`GET /v1/AUTH_test/big/obj HTTP/1.1\r\nHost: ${u.host}\r\nX-Auth-Token: ${token}\r\n\r\n`);
    await once(s, 'data');
    s.destroy();
    await expect.poll(() => swift.logs().some((l) => / GET \/v1\/AUTH_test\/big\/obj .* 499 /.test(l) || /GET \/v1\/AUTH_test\/big\/obj HTTP\/1.0" 499/.test(l)), { timeout: 15_000 }).toBe(true);
  });
});
