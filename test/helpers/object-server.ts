// A small Swift-like object server for tests: PUT/GET/HEAD of <container>/<object> under a base
// path, user metadata kept as X-Object-Meta-* headers, ETag = MD5, Last-Modified, optional bearer
// token. Tests can count requests, serve bytes other than the ones stored, or stop it.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

interface StoredObject {
  body: Buffer;
  meta: Record<string, string>;
  etag: string;
  lastModified: string;
}

export interface ObjectServer {
  url: string;
  /** Requests seen, as "METHOD /container/object". */
  requests: string[];
  count(method: string, objectPath: string): number;
  objects: Map<string, StoredObject>;
  /** The next `times` GETs of `objectPath` send `body` instead (headers unchanged). */
  corruptNextGets(objectPath: string, body: Buffer, times: number): void;
  close(): Promise<void>;
}

export async function startObjectServer(opts: { token?: string; basePath?: string } = {}): Promise<ObjectServer> {
  const base = opts.basePath ?? '/v1/AUTH_test';
  const objects = new Map<string, StoredObject>();
  const requests: string[] = [];
  const corrupt = new Map<string, { body: Buffer; times: number }>();
  let clock = Date.parse('2026-01-01T00:00:00Z');

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const objectPath = decodeURIComponent(url.pathname.slice(base.length));
    requests.push(`${req.method} ${objectPath}`);
    if (!url.pathname.startsWith(`${base}/`)) {
      res.writeHead(404).end();
      return;
    }
    if (opts.token && req.headers['x-auth-token'] !== opts.token) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('unauthorized');
      return;
    }
    if (req.method === 'PUT') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const etag = createHash('md5').update(body).digest('hex');
        if (req.headers.etag && req.headers.etag !== etag) {
          res.writeHead(422).end('etag mismatch');
          return;
        }
        const meta: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-object-meta-') && typeof v === 'string') meta[k] = v;
        // Seconds resolution, as HTTP dates have: each write moves the clock on.
        clock += 1000;
        objects.set(objectPath, { body, meta, etag, lastModified: new Date(clock).toUTCString() });
        res.writeHead(201, { etag }).end();
      });
      return;
    }
    const obj = objects.get(objectPath);
    if (!obj || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(obj ? 405 : 404).end();
      return;
    }
    const headers = { ...obj.meta, etag: `"${obj.etag}"`, 'last-modified': obj.lastModified, 'content-length': String(obj.body.length) };
    let body = obj.body;
    const bad = req.method === 'GET' ? corrupt.get(objectPath) : undefined;
    if (bad && bad.times > 0) {
      bad.times--;
      body = bad.body;
      headers['content-length'] = String(body.length);
    }
    res.writeHead(200, headers);
    res.end(req.method === 'GET' ? body : undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}${base}`,
    requests,
    count: (method, objectPath) => requests.filter((r) => r === `${method} ${objectPath}`).length,
    objects,
    corruptNextGets: (objectPath, body, times) => corrupt.set(objectPath, { body, times }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
