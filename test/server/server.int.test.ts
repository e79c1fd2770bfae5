import fs from 'node:fs';
import http from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { versionedStorlet } from '../helpers/gateway.js';
import { call, json, metric, startTestServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
beforeAll(async () => {
  // Long enough for a cold scope's threads to start on a loaded machine (the 504 case has its own).
  s = await startTestServer({ storlet_timeout_ms: 15_000 });
});
afterAll(async () => {
  await s?.close();
});

const invoke = (path: string, opts: Parameters<typeof call>[3] = {}) => call(s, 'POST', `/v1/invoke/${path}`, { token: s.tokens.invoke, ...opts });

/** Response header names as they came on the wire (Node's `headers` lowercases them). */
function rawHeaderNames(path: string, headers: Record<string, string>): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: s.socket, method: 'POST', path: `/v1/invoke/${path}`, headers: { authorization: `Bearer ${s.tokens.invoke}`, ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.rawHeaders.filter((_, i) => i % 2 === 0)));
    });
    req.on('error', reject);
    req.end('x');
  });
}

describe('POST /v1/invoke', () => {
  it('streams the object through a storlet, metadata in and out as X-Object-Meta-*', async () => {
    for (const via of ['unix', 'tcp'] as const) {
      const r = await invoke('s1/uppercase.mjs', { via, body: 'over http', headers: { 'X-Object-Meta-Color': 'red', 'X-Object-Meta-Content-Type': 'text/plain' } });
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe('OVER HTTP');
      expect(r.headers['x-object-meta-color']).toBe('red');
      expect(r.headers['x-object-meta-content-type']).toBe('text/plain');
      expect(r.headers['x-object-meta-storlet-transform']).toBe('uppercase');
    }
  });

  it('answers metadata in one canonical header form, and Content-Type from the output metadata', async () => {
    const r = await invoke('s1/uppercase.mjs', { body: 'x', headers: { 'x-object-meta-color': 'red', 'X-OBJECT-META-CONTENT-TYPE': 'text/plain; charset=utf-8' } });
    const names = (await rawHeaderNames('s1/uppercase.mjs', { 'x-object-meta-color': 'red', 'X-OBJECT-META-CONTENT-TYPE': 'text/plain' })).filter((n) => /^x-object-meta-/i.test(n));
    expect(names.sort()).toEqual(['X-Object-Meta-Color', 'X-Object-Meta-Content-Type', 'X-Object-Meta-Storlet-Transform']);
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect((await invoke('s1/identity.mjs', { body: 'x' })).headers['content-type']).toBe('application/octet-stream');
  });

  it('lowercases parameter names from the query and from headers alike', async () => {
    const r = await invoke('s1/metadata-echo.mjs?FromQuery=1', { body: '', headers: { 'X-Storlet-Parameter-Mode': 'fast' } });
    expect(json(r).params).toEqual({ fromquery: '1', mode: 'fast' });
    const twice = await invoke('s1/metadata-echo.mjs?a=1', { body: '', headers: { 'X-Storlet-Parameter-A': '2' } });
    expect([twice.status, json(twice).error]).toEqual([400, 'parameter a is given more than once (header)']);
  });

  it('a 404 does not reveal where the node keeps its store', async () => {
    const r = await invoke('s1/nope.mjs', { body: 'x' });
    expect(r.status).toBe(404);
    expect(r.body.toString()).not.toContain(s.root);
    expect(json(r)).toEqual({ error: 'storlet nope.mjs is not deployed in the local store <store_dir>', code: 'ENOSTORLET' });
  });

  it('takes params from X-Storlet-Parameter-* headers and the query, and a range', async () => {
    const r = await invoke('s1/metadata-echo.mjs?fromquery=1', { body: '', headers: { 'X-Storlet-Parameter-Mode': 'fast', 'X-Object-Meta-K': 'v' } });
    expect(r.status).toBe(200);
    expect(json(r)).toMatchObject({ metadata: { K: 'v' }, params: { fromquery: '1', mode: 'fast' } });
    const ranged = await invoke('s1/identity.mjs', { body: '0123456789', headers: { 'X-Storlet-Range': 'bytes=2-5' } });
    expect(ranged.body.toString()).toBe('2345');
  });

  it('passes extra inputs from a multipart/mixed body, the first part being the object', async () => {
    const b = 'sep';
    const body = [`--${b}`, 'X-Object-Meta-Part: one', '', 'first', `--${b}`, '', 'second', `--${b}`, '', 'third', `--${b}--`, ''].join('\r\n');
    const r = await invoke('s1/concat.mjs', { body, headers: { 'content-type': `multipart/mixed; boundary=${b}`, 'X-Storlet-Parameter-separator': '+' } });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('first+second+third');
    expect(fs.readdirSync(`${s.root}/tmp`)).toEqual([]);
  });

  it('answers each failure with its status and a one-line JSON error', async () => {
    const cases: [string, Parameters<typeof call>[3], number, RegExp][] = [
      ['s1/..%2Fx', {}, 400, /storlet name "\.\.\/x" may only hold/],
      ['bad%20scope/identity.mjs', {}, 400, /scope name "bad scope" may only hold/],
      ['s1/identity.mjs', { headers: { 'X-Storlet-Range': 'bytes=5-1' } }, 400, /X-Storlet-Range must be bytes=START-END/],
      ['s1/nope.mjs', {}, 404, /storlet nope\.mjs is not deployed/],
      ['s1/misbehave.mjs?mode=fail-before', {}, 502, /refusing this object: it is blue/],
      ['s1/misbehave.mjs?mode=huge-metadata', {}, 502, /output metadata from storlet misbehave\.mjs exceeds the 64 KiB bound/],
    ];
    for (const [path, opts, status, re] of cases) {
      const r = await invoke(path, { body: 'x', ...opts });
      expect(r.status, path).toBe(status);
      expect(r.headers['content-type']).toMatch(/^application\/json/);
      const text = r.body.toString();
      expect(text.split('\n')).toHaveLength(1);
      expect(JSON.parse(text).error).toMatch(re);
    }
  });

  it('answers a storlet that sends nothing in storlet_timeout_ms with 504', async () => {
    const t = await startTestServer({ storlet_timeout_ms: 1500 });
    try {
      const r = await call(t, 'POST', '/v1/invoke/s1/misbehave.mjs?mode=busy-loop', { token: t.tokens.invoke, body: 'x' });
      expect(r.status).toBe(504);
      expect(JSON.parse(r.body.toString()).error).toMatch(/storlet misbehave\.mjs sent no metadata within 1\.5 s; task cancelled/);
    } finally {
      await t.close();
    }
  });

  it('answers a storlet that fails or stays silent after its metadata but before any output byte with an error status, not a cut 200', async () => {
    const failed = await invoke('s1/misbehave.mjs?mode=meta-then-fail', { body: 'x' });
    expect(failed.status).toBe(502);
    expect(JSON.parse(failed.body.toString()).error).toMatch(/gave up before any output/);
    const t = await startTestServer({ storlet_timeout_ms: 1500 });
    try {
      const r = await call(t, 'POST', '/v1/invoke/s1/misbehave.mjs?mode=meta-then-silence', { token: t.tokens.invoke, body: 'x' });
      expect(r.status).toBe(504);
      expect(JSON.parse(r.body.toString()).error).toMatch(/storlet misbehave\.mjs stalled: no output for 1\.5 s/);
    } finally {
      await t.close();
    }
  });

  it('sends a small output that ends at once whole, with its Content-Length', async () => {
    const r = await invoke('s1/identity.mjs', { body: 'whole' });
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe('5');
    expect(r.headers['transfer-encoding']).toBeUndefined();
  });

  it('a storlet failing after the body began breaks the response: never a clean short object', async () => {
    const r = await invoke('s1/misbehave.mjs?mode=fail-after', { body: 'x' });
    expect(r.status).toBe(200);
    expect(r.error).toBeDefined();
    expect(r.body.length).toBeLessThanOrEqual(100_000);
  });

  it('serves 64 concurrent invocations', async () => {
    const rs = await Promise.all(Array.from({ length: 64 }, (_, i) => invoke(`s${i % 4}/identity.mjs`, { body: `n${i}`, via: i % 2 ? 'tcp' : 'unix' })));
    expect(rs.map((r) => r.status)).toEqual(Array(64).fill(200));
    expect(rs.map((r) => r.body.toString())).toEqual(Array.from({ length: 64 }, (_, i) => `n${i}`));
  });

  it('streams a request body it reads while the client still writes', async () => {
    const total = 16 * 1024 * 1024;
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= total) return this.push(null);
        sent += 1 << 20;
        this.push(Buffer.alloc(1 << 20, 120));
      },
    });
    const r = await invoke('s1/identity.mjs', { body });
    expect(r.body.length).toBe(total);
  });
});

describe('a client that goes away', () => {
  /**
   * A daemon with one task thread and a long storlet timeout: unless the client's leaving cancels
   * its task at once, the next call waits for that thread and times out.
   */
  async function clientLeavingCancelsItsTask(): Promise<void> {
    // One thread per daemon and a storlet timeout far beyond the test's: only a cancel frees it.
    const t = await startTestServer({ storlet_daemon_thread_pool_size: 1, storlet_timeout_ms: 600_000 });
    try {
      expect((await call(t, 'POST', '/v1/invoke/gone/misbehave.mjs', { token: t.tokens.invoke, body: 'warm' })).status).toBe(200);
      const req = http.request({ socketPath: t.socket, method: 'POST', path: '/v1/invoke/gone/misbehave.mjs?mode=busy-loop', headers: { authorization: `Bearer ${t.tokens.invoke}` } });
      req.on('error', () => {});
      req.end('x');
      const sb = t.gateway.findSandbox('gone')!;
      await expect.poll(() => sb.inFlight, { timeout: 10_000 }).toBe(1); // the busy task holds the only thread
      req.destroy(); // the client leaves before any metadata
      const next = await call(t, 'POST', '/v1/invoke/gone/misbehave.mjs', { token: t.tokens.invoke, body: 'after' });
      expect([next.status, next.body.toString()]).toEqual([200, 'after']);
      await expect.poll(() => metric(t, 'sandlet_invocations_total{scope="gone",storlet="misbehave.mjs",outcome="aborted"}'), { timeout: 10_000 }).toBe(1);
    } finally {
      await t.close();
    }
  }
  it('aborts the signal it hands the gateway when the client leaves before its answer, and only then', async () => {
    // Watches what the route hands the real gateway (the call goes through unchanged).
    const signals: AbortSignal[] = [];
    const real = s.gateway.invoke.bind(s.gateway);
    const spy = vi.spyOn(s.gateway, 'invoke').mockImplementation((req) => {
      signals.push((req as { signal?: AbortSignal }).signal!);
      return real(req);
    });
    try {
      expect((await invoke('leave/identity.mjs', { body: 'whole' })).status).toBe(200);
      const req = http.request({ socketPath: s.socket, method: 'POST', path: '/v1/invoke/leave/misbehave.mjs?mode=busy-loop', headers: { authorization: `Bearer ${s.tokens.invoke}` } });
      req.on('error', () => {});
      req.end('x');
      await expect.poll(() => signals.length, { timeout: 10_000 }).toBe(2);
      expect(signals[1]!.aborted).toBe(false);
      req.destroy();
      await expect.poll(() => signals[1]!.aborted, { timeout: 10_000 }).toBe(true);
      expect(signals[1]!.reason).toMatchObject({ code: 'ECANCELLED' });
      expect(signals[0]!.aborted).toBe(false); // a call answered in full is never aborted
    } finally {
      spy.mockRestore();
    }
  });

  it('cancels its task at once: the daemon\'s only thread serves the next call', clientLeavingCancelsItsTask, 60_000);
});

describe('operators', () => {
  const op = (method: string, path: string) => call(s, method, path, { token: s.tokens.operate });

  it('lists scopes and shows one in detail', async () => {
    await invoke('ops/identity.mjs', { body: 'x' });
    const list = json(await op('GET', '/v1/scopes')) as { scopes: { scope: string }[] };
    expect(list.scopes.map((x) => x.scope)).toContain('ops');
    const one = json(await op('GET', '/v1/scopes/ops'));
    expect(one).toMatchObject({ scope: 'ops', state: 'running', inFlight: 0, daemons: ['identity.mjs'], restarts: { start: 1 }, uptimeRatio: 1 });
    expect(typeof one.startedAt).toBe('string');
    expect((await op('GET', '/v1/scopes/never-used')).status).toBe(404);
  });

  it('restarts a scope, recording the reason, and stops it', async () => {
    await invoke('ops/identity.mjs', { body: 'x' });
    const r = json(await op('POST', '/v1/scopes/ops/restart?reason=rotate%20keys'));
    expect(r).toMatchObject({ state: 'running', restarts: { start: 1, operator: 1 } });
    expect((r.recentRestarts as { reason: string }[]).at(-1)!.reason).toMatch(/^operator restart by token [a-z0-9]{12}: rotate keys$/);
    const idle = json(await op('POST', '/v1/scopes/ops/restart?when=idle'));
    expect(idle.restart).toBe('at the next idle moment');
    const stopped = json(await op('POST', '/v1/scopes/ops/stop'));
    expect(stopped.state).toBe('stopped');
    expect((await invoke('ops/identity.mjs', { body: 'back' })).body.toString()).toBe('back');
  });

  it('stops one daemon', async () => {
    await invoke('ops/uppercase.mjs', { body: 'x' });
    expect(json(await op('POST', '/v1/scopes/ops/daemons/uppercase.mjs/stop'))).toEqual({ scope: 'ops', stopped: 'uppercase.mjs' });
    expect((await op('POST', '/v1/scopes/ops/daemons/uppercase.mjs/stop')).status).toBe(404);
    expect((await invoke('ops/uppercase.mjs', { body: 'again' })).body.toString()).toBe('AGAIN');
  });

  it('shows the tail of an invocation log, and follows it', async () => {
    await invoke('logs/misbehave.mjs?mode=log-flood', { body: '' });
    const r = await op('GET', '/v1/scopes/logs/logs/misbehave.mjs?tail=3');
    expect(r.status).toBe(200);
    const lines = r.body.toString().trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toContain('line 1999');
    expect((await op('GET', '/v1/scopes/logs/logs/identity.mjs')).status).toBe(404);

    // Follow: start reading, then invoke again; the new lines arrive on the open response.
    const seen = await new Promise<string>((resolve, reject) => {
      const req = http.request({ socketPath: s.socket, path: '/v1/scopes/logs/logs/misbehave.mjs?tail=0&follow=1', headers: { authorization: `Bearer ${s.tokens.operate}` } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
          if (text.includes('line 1999')) {
            req.destroy();
            resolve(text);
          }
        });
        void invoke('logs/misbehave.mjs?mode=log-flood', { body: '' });
      });
      req.on('error', reject);
      req.end();
    });
    expect(seen).toContain('line 0 ');
  });
});

describe('deploy over HTTP', () => {
  it('PUTs a storlet with Swift registration headers; the next invocation runs it', async () => {
    const put = (tag: string) =>
      call(s, 'PUT', '/v1/storlets/put.mjs', {
        token: s.tokens.admin,
        body: versionedStorlet(tag),
        headers: {
          'X-Object-Meta-Storlet-Language': 'js',
          'X-Object-Meta-Storlet-Interface-Version': '1.0',
          'X-Object-Meta-Storlet-Object-Metadata': 'no',
          'X-Object-Meta-Storlet-Main': 'put.mjs',
        },
      });
    expect((await put('v1')).status).toBe(201);
    expect((await invoke('s1/put.mjs', { body: '' })).body.toString()).toBe('v1');
    const r = await put('v2');
    expect(json(r)).toMatchObject({ kind: 'storlet', name: 'put.mjs', main: 'put.mjs' });
    expect((await invoke('s1/put.mjs', { body: '' })).body.toString()).toBe('v2');
    const bad = await call(s, 'PUT', '/v1/storlets/bad.mjs', { token: s.tokens.admin, body: 'x', headers: { 'X-Object-Meta-Storlet-Language': 'js' } });
    expect(bad.status).toBe(400);
    expect(json(bad).error).toBe('registration: interface version: is mandatory');
    const dep = await call(s, 'PUT', '/v1/dependencies/d.txt', { token: s.tokens.admin, body: 'dep', headers: { 'X-Object-Meta-Storlet-Dependency-Version': '1', 'X-Object-Meta-Storlet-Dependency-Permissions': '0640' } });
    expect(json(dep)).toMatchObject({ kind: 'dependency', name: 'd.txt', version: '1', permissions: 0o640 });
  });
});

describe('auth', () => {
  const endpoints: [string, string, string[], Parameters<typeof call>[3]?][] = [
    ['POST', '/v1/invoke/s1/identity.mjs', ['invoke', 'scoped', 'operate', 'admin'], { body: 'x' }],
    ['POST', '/v1/invoke/s2/identity.mjs', ['invoke', 'operate', 'admin'], { body: 'x' }],
    ['GET', '/v1/scopes', ['operate', 'admin']],
    ['GET', '/v1/scopes/s1', ['operate', 'admin']],
    ['POST', '/v1/scopes/s1/restart', ['operate', 'admin']],
    ['POST', '/v1/scopes/s1/daemons/nothing.mjs/stop', ['operate', 'admin']],
    ['GET', '/v1/scopes/s1/logs/identity.mjs', ['operate', 'admin']],
    ['POST', '/v1/scopes/auth-stop/stop', ['operate', 'admin']],
    ['PUT', '/v1/storlets/authz.mjs', ['admin'], { body: versionedStorlet('a'), headers: { 'X-Object-Meta-Storlet-Language': 'js', 'X-Object-Meta-Storlet-Interface-Version': '1.0', 'X-Object-Meta-Storlet-Object-Metadata': 'no', 'X-Object-Meta-Storlet-Main': 'authz.mjs' } }],
    ['PUT', '/v1/dependencies/authz.txt', ['admin'], { body: 'x', headers: { 'X-Object-Meta-Storlet-Dependency-Version': '1' } }],
    ['GET', '/metrics', ['operate', 'admin']],
    ['GET', '/healthz', ['none', 'bad', 'invoke', 'scoped', 'operate', 'admin']],
    ['GET', '/readyz', ['none', 'bad', 'invoke', 'scoped', 'operate', 'admin']],
  ];

  it.each(endpoints)('%s %s: 401 without a valid token, 403 for roles that may not', async (method, path, allowed, opts) => {
    await invoke('auth-stop/identity.mjs', { body: 'x' });
    const tokens: Record<string, string | undefined> = { none: undefined, bad: 'sl_000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', ...s.tokens };
    for (const [who, token] of Object.entries(tokens)) {
      const r = await call(s, method, path, { ...opts, token, via: 'tcp' });
      if (allowed.includes(who)) expect([401, 403], `${who} on ${method} ${path}`).not.toContain(r.status);
      else expect(r.status, `${who} on ${method} ${path}: ${r.body.toString()}`).toBe(token === undefined || who === 'bad' ? 401 : 403);
      if (r.status === 401) expect(r.headers['www-authenticate']).toBe('Bearer');
    }
  });

  it('takes the token from X-Auth-Token too', async () => {
    const ok = await call(s, 'GET', '/v1/scopes', { headers: { 'X-Auth-Token': s.tokens.operate } });
    expect(ok.status).toBe(200);
    const bad = await call(s, 'GET', '/v1/scopes', { headers: { 'X-Auth-Token': `${s.tokens.operate}x` } });
    expect([bad.status, json(bad).code]).toEqual([401, 'EAUTH']);
    const denied = await call(s, 'GET', '/v1/scopes', { headers: { 'X-Auth-Token': s.tokens.invoke } });
    expect(denied.status).toBe(403);
  });

  it('never writes a token to the log', async () => {
    await invoke('s1/misbehave.mjs?mode=fail-before', { body: 'x' });
    await call(s, 'GET', '/v1/scopes', { token: `${s.tokens.admin}x` });
    await call(s, 'GET', '/v1/scopes', { headers: { 'X-Auth-Token': `${s.tokens.operate}x` } });
    const all = s.logs.join('');
    for (const t of Object.values(s.tokens)) expect(all).not.toContain(t.split('.')[1]);
    expect(all).not.toContain('authorization');
    expect(all).not.toContain('x-auth-token');
  });
});

describe('health and metrics', () => {
  it('answers healthz and readyz', async () => {
    expect(json(await call(s, 'GET', '/healthz'))).toEqual({ status: 'ok' });
    expect(json(await call(s, 'GET', '/readyz'))).toEqual({ status: 'ready', checks: { backend: 'process' } });
  });

  it('moves metrics as invocations, restarts and cache events happen', async () => {
    const metric = async (name: string): Promise<number> => {
      const text = (await call(s, 'GET', '/metrics', { token: s.tokens.operate })).body.toString();
      const line = text.split('\n').find((l) => l.startsWith(name));
      return line ? Number(line.split(' ').at(-1)) : 0;
    };
    const ok = 'sandlet_invocations_total{scope="m",storlet="identity.mjs",outcome="ok"}';
    const failed = 'sandlet_invocations_total{scope="m",storlet="misbehave.mjs",outcome="storlet_error"}';
    const restarts = 'sandlet_sandbox_restarts_total{scope="m",reason="operator"}';
    const before = { ok: await metric(ok), failed: await metric(failed), hits: await metric('sandlet_cache_hits_total'), misses: await metric('sandlet_cache_misses_total'), bytesOut: await metric('sandlet_invocation_bytes_out_total{scope="m"}') };
    await invoke('m/identity.mjs', { body: 'abc' });
    await invoke('m/identity.mjs', { body: 'defg' });
    await invoke('m/misbehave.mjs?mode=fail-before', { body: 'x' });
    await call(s, 'POST', '/v1/scopes/m/restart', { token: s.tokens.operate });
    await call(s, 'PUT', '/v1/storlets/metric.mjs', { token: s.tokens.admin, body: versionedStorlet('m'), headers: { 'X-Object-Meta-Storlet-Language': 'js', 'X-Object-Meta-Storlet-Interface-Version': '1.0', 'X-Object-Meta-Storlet-Object-Metadata': 'no', 'X-Object-Meta-Storlet-Main': 'metric.mjs' } });
    await invoke('m/metric.mjs', { body: '' });
    expect(await metric(ok)).toBe(before.ok + 2);
    expect(await metric(failed)).toBe(before.failed + 1);
    expect(await metric(restarts)).toBe(1);
    expect(await metric('sandlet_cold_starts_total{scope="m"}')).toBe(1);
    expect(await metric('sandlet_invocation_bytes_out_total{scope="m"}')).toBe(before.bytesOut + 7 + 1);
    expect(await metric('sandlet_cache_hits_total')).toBeGreaterThan(before.hits);
    expect(await metric('sandlet_cache_misses_total')).toBeGreaterThan(before.misses);
    expect(await metric('sandlet_invocations_in_flight')).toBe(0);
    expect(await metric('sandlet_scope_uptime_ratio{scope="m"}')).toBe(1);
    expect(await metric('sandlet_invocation_duration_seconds_count{outcome="ok"}')).toBeGreaterThan(0);
  });
});

describe('availability metrics', () => {
  it('an unplanned death counts as a crash restart, lowers the uptime ratio and yields a recovery time', async () => {
    const metric = async (name: string): Promise<number | undefined> => {
      const text = (await call(s, 'GET', '/metrics', { token: s.tokens.operate })).body.toString();
      const line = text.split('\n').find((l) => l.startsWith(name));
      return line ? Number(line.split(' ').at(-1)) : undefined;
    };
    await invoke('crashy/identity.mjs', { body: 'x' });
    expect(await metric('sandlet_scope_mean_time_to_recovery_seconds{scope="crashy"}')).toBeUndefined();
    const sb = s.gateway.findSandbox('crashy')!;
    process.kill(Number(sb.describe().id), 'SIGKILL');
    await vi.waitFor(() => expect(sb.state).toBe('dead'), { timeout: 5000 });
    expect((await invoke('crashy/identity.mjs', { body: 'back' })).body.toString()).toBe('back');
    expect(await metric('sandlet_sandbox_restarts_total{scope="crashy",reason="crash"}')).toBe(1);
    expect(await metric('sandlet_cold_starts_total{scope="crashy"}')).toBe(2);
    expect(await metric('sandlet_scope_mean_time_to_recovery_seconds{scope="crashy"}')).toBeGreaterThan(0);
    expect(await metric('sandlet_scope_uptime_ratio{scope="crashy"}')).toBeLessThan(1);
  });
});

describe('trusted Unix-socket peers', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ trust_unix_peers: 'operate' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('gives tokenless Unix peers the configured role, and nobody on TCP', async () => {
    expect((await call(t, 'GET', '/v1/scopes', { via: 'unix' })).status).toBe(200);
    expect((await call(t, 'PUT', '/v1/dependencies/x.txt', { via: 'unix', body: 'x', headers: { 'X-Object-Meta-Storlet-Dependency-Version': '1' } })).status).toBe(403);
    expect((await call(t, 'GET', '/v1/scopes', { via: 'tcp' })).status).toBe(401);
    // A token sent over the socket is still checked.
    expect((await call(t, 'GET', '/v1/scopes', { via: 'unix', token: 'sl_000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })).status).toBe(401);
  });
});

describe('start-up failure', () => {
  it('a TCP address that cannot be bound leaves no Unix listener or socket file behind', async () => {
    const pino = (await import('pino')).default;
    const { startServer } = await import('../../src/server/server.js');
    const socket = `${s.root}/second.sock`;
    await expect(
      startServer({ gateway: s.gateway, config: { ...s.gateway.config, listen_socket: socket, listen_tcp: `127.0.0.1:${s.port}` }, logger: pino({ level: 'silent' }) }),
    ).rejects.toMatchObject({ code: 'EBADCONFIG', message: `cannot listen on 127.0.0.1:${s.port}: the address is in use (another sandlet serve?)` });
    expect(fs.existsSync(socket)).toBe(false);
  });
});
