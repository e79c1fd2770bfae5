// Bounded connections through real sockets: half-open connections, bodies that stop, a cap, and
// the errors the HTTP parser raises, all answered in sandlet's one JSON shape.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, json, metric, rawConnect, startTestServer, type TestServer } from '../helpers/server.js';

const LATE_READER = `import { setTimeout as sleep } from 'node:timers/promises';
export async function invoke({ inputs, output }) {
  await sleep(3000); // reads nothing for three times body_idle_timeout_ms
  output.setMetadata({});
  for await (const c of inputs[0].stream) output.stream.write(c);
  output.stream.end();
}
`;

/** The status line and JSON body of a raw HTTP answer. */
function parsed(raw: string): { status: number; body: Record<string, unknown> } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1]);
  return { status, body: JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Record<string, unknown> };
}

describe('timeouts', () => {
  let s: TestServer;
  beforeAll(async () => {
    // Bounds a loaded machine's pauses do not reach, yet short enough to wait for.
    s = await startTestServer({ header_timeout_ms: 1000, body_idle_timeout_ms: 1000, max_connections: 64 });
    await s.gateway.deploy(Buffer.from(LATE_READER), { kind: 'storlet', name: 'late-reader.mjs', language: 'js', main: 'late-reader.mjs', interfaceVersion: '1.0', objectMetadata: 'no' });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('closes half-open connections after the header timeout, answering 408 to those that began', async () => {
    const before = await metric(s, 'sandlet_http_connections_timed_out_total{phase="headers"}');
    const silent = await Promise.all([...Array(6)].map((_, i) => rawConnect(s, i % 2 ? 'unix' : 'tcp')));
    const partial = await Promise.all([...Array(4)].map((_, i) => rawConnect(s, i % 2 ? 'unix' : 'tcp', 'POST /v1/invoke/s1/identity.mjs HTTP/1.1\r\nHost: x\r\n')));
    await Promise.all([...silent, ...partial].map((c) => c.closed));
    for (const c of partial) {
      const r = parsed(c.received());
      expect(r.status).toBe(408);
      expect(r.body).toEqual({ error: 'the request headers did not arrive within 1000 ms (header_timeout_ms)', code: 'EHTTP' });
    }
    expect(await metric(s, 'sandlet_http_connections_timed_out_total{phase="headers"}')).toBe(before + 10);
    expect(await metric(s, 'sandlet_http_connections_open')).toBe(1); // the metrics call itself
  });

  it('closes requests whose body stops arriving, while a legitimate call succeeds', async () => {
    const before = await metric(s, 'sandlet_http_connections_timed_out_total{phase="body"}');
    const head = (length: number, scope: string) =>
      `POST /v1/invoke/${scope}/identity.mjs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.tokens.invoke}\r\nContent-Length: ${length}\r\n\r\nsome bytes`;
    // Small bodies are read whole before the storlet runs; large ones stream into it.
    const stalled = await Promise.all([
      rawConnect(s, 'tcp', head(1000, 'stall')),
      rawConnect(s, 'unix', head(1000, 'stall')),
      rawConnect(s, 'tcp', head(10_000_000, 'stall')),
      rawConnect(s, 'unix', head(10_000_000, 'stall')),
    ]);
    const ok = await call(s, 'POST', '/v1/invoke/legit/identity.mjs', { token: s.tokens.invoke, body: 'still served' });
    expect([ok.status, ok.body.toString()]).toEqual([200, 'still served']);
    await Promise.all(stalled.map((c) => c.closed));
    // Closed; a streaming storlet may have sent what it had, but never the end of a whole answer.
    for (const c of stalled) expect(c.received()).not.toMatch(/\r\n0\r\n\r\n$/);
    expect(await metric(s, 'sandlet_http_connections_timed_out_total{phase="body"}')).toBe(before + 4);
    // The stalled invocations ended; the scope serves again.
    expect((await call(s, 'POST', '/v1/invoke/stall/identity.mjs', { token: s.tokens.invoke, body: 'after' })).body.toString()).toBe('after');
  });

  it('a storlet that reads late does not count against a client that sent everything', async () => {
    const before = await metric(s, 'sandlet_http_connections_timed_out_total{phase="body"}');
    const total = 8 * 1024 * 1024;
    const r = await call(s, 'POST', '/v1/invoke/late/late-reader.mjs', { token: s.tokens.invoke, body: Readable.from([Buffer.alloc(total, 120)]) });
    expect([r.status, r.body.length]).toEqual([200, total]);
    expect(await metric(s, 'sandlet_http_connections_timed_out_total{phase="body"}')).toBe(before);
  });
});

describe('connection cap', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ max_connections: 3, header_timeout_ms: 60_000 });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('refuses connections beyond max_connections, on both listeners together', async () => {
    const held = [await rawConnect(s, 'tcp'), await rawConnect(s, 'unix'), await rawConnect(s, 'tcp')];
    for (const via of ['tcp', 'unix'] as const) {
      const extra = await rawConnect(s, via, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await extra.closed;
      expect(extra.received()).toBe('');
    }
    // Room again: a held one goes away and a call is served.
    held.pop()!.socket.destroy();
    await expect.poll(async () => (await call(s, 'GET', '/healthz')).status, { timeout: 10_000 }).toBe(200);
    held.pop()!.socket.destroy();
    expect(await metric(s, 'sandlet_http_connections_refused_total')).toBeGreaterThanOrEqual(2);
    for (const c of held) c.socket.destroy();
  });
});

describe('parser errors in sandlet\'s error shape', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('headers over 16 KiB get a 431 with the JSON error, on both listeners', async () => {
    for (const via of ['unix', 'tcp'] as const) {
      const r = await call(s, 'GET', '/healthz', { via, headers: { 'x-big': 'a'.repeat(20 * 1024) } });
      expect(r.status).toBe(431);
      expect(r.headers['content-type']).toMatch(/^application\/json/);
      expect(json(r)).toEqual({ error: 'the request headers exceed 16 KiB', code: 'EHTTP' });
    }
  });

  it('malformed requests, bad URLs and unknown routes all answer {"error","code"} on one line', async () => {
    const garbage = await rawConnect(s, 'tcp', 'NOT HTTP AT ALL\r\n\r\n');
    await garbage.closed;
    const g = parsed(garbage.received());
    expect(g.status).toBe(400);
    expect(Object.keys(g.body).sort()).toEqual(['code', 'error']);
    expect(g.body.code).toBe('EHTTP');

    const answers = [
      await call(s, 'POST', '/v1/invoke/s1/%E0%A4%A', { token: s.tokens.invoke, body: 'x' }),
      await call(s, 'GET', '/v1/nothing-here', { token: s.tokens.operate }),
      await call(s, 'GET', '/v1/scopes', { headers: { authorization: 'Basic abc' } }),
      await call(s, 'GET', '/v1/scopes', { token: s.tokens.invoke }),
    ];
    expect(answers.map((r) => r.status)).toEqual([400, 404, 401, 403]);
    for (const r of answers) {
      const text = r.body.toString();
      expect(text.split('\n')).toHaveLength(1);
      expect(Object.keys(JSON.parse(text) as object).sort()).toEqual(['code', 'error']);
    }
  });

});
