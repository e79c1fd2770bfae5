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
import { tempDir } from '../helpers/fs.js';
import { requireSwift, skipSwift, startSwift, swiftToken, SWIFT_USERS, type TestSwift } from '../helpers/swift.js';

async function door(upstream: string): Promise<{ door: FrontDoor; gateway: Gateway; close: () => Promise<void> }> {
  const root = tempDir();
  const config = resolveConfig({ host_root: root.dir, backend: 'process', upstream, proxy_listen: '127.0.0.1:0' });
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
    d = await door(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
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
