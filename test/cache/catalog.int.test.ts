// The catalog against the hand-written object server (test/helpers/object-server.ts): these tests
// inject what a real Swift cannot be made to do on demand (a corrupted transfer of the next N GETs)
// and step an injected clock against exact request counts. Against a real Swift, the same store
// path is tested in http-store and gateway-cache tests.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CacheMetrics } from '../../src/cache/cache-metrics.js';
import { StorletCatalog } from '../../src/cache/catalog.js';
import { ContentCache } from '../../src/cache/content-cache.js';
import { HttpStore } from '../../src/cache/http-store.js';
import { tempDir } from '../helpers/fs.js';
import { startObjectServer, type ObjectServer } from '../helpers/object-server.js';

const sha = (b: string): string => createHash('sha256').update(b).digest('hex');
const storlet = { kind: 'storlet' as const, name: 'a.mjs', language: 'js', interfaceVersion: '1.0', objectMetadata: 'no', main: 'a.mjs' };

let dir: string;
let cleanup: () => void;
let server: ObjectServer;
let clock: number;
let metrics: CacheMetrics;
let repaired: string[];
let warnings: string[];

beforeEach(async () => {
  ({ dir, cleanup } = tempDir());
  server = await startObjectServer();
  clock = 1_000_000;
  repaired = [];
  warnings = [];
});
afterEach(async () => {
  await server.close();
  cleanup();
});

function catalog(ttlMs = 10_000): { catalog: StorletCatalog; cache: ContentCache; store: HttpStore } {
  metrics = new CacheMetrics();
  const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg as string) });
  const store = new HttpStore({ url: server.url, storletContainer: 'storlet', dependencyContainer: 'dependency', timeoutMs: 2000 });
  const cache = new ContentCache({ dir: path.join(dir, 'cache'), maxBytes: 1 << 20, logger, metrics });
  const c = new StorletCatalog({ store, cache, metrics, logger, ttlMs, now: () => clock, onRepaired: (s) => repaired.push(s) });
  c.open();
  return { catalog: c, cache, store };
}

describe('storlet catalog', () => {
  it('asks the store at most once per TTL, and fetches content only when it changed', async () => {
    const { catalog: c, store } = catalog(10_000);
    await store.deploy(Buffer.from('v1'), storlet);
    const r1 = await c.resolve('a.mjs');
    expect(r1.storlet.sha256).toBe(sha('v1'));
    expect([server.count('HEAD', '/storlet/a.mjs'), server.count('GET', '/storlet/a.mjs')]).toEqual([1, 1]);
    await store.deploy(Buffer.from('v2'), storlet);
    clock += 9_999;
    expect(await c.resolve('a.mjs')).toBe(r1); // within the TTL: no request, the same resolution
    expect(server.count('HEAD', '/storlet/a.mjs')).toBe(1);
    clock += 1;
    const r2 = await c.resolve('a.mjs');
    expect(r2.storlet.sha256).toBe(sha('v2'));
    expect(r2.version).not.toBe(r1.version);
    expect([server.count('HEAD', '/storlet/a.mjs'), server.count('GET', '/storlet/a.mjs')]).toEqual([2, 2]);
    clock += 10_000;
    expect(await c.resolve('a.mjs')).toBe(r2); // unchanged in the store: a HEAD, no GET
    expect([server.count('HEAD', '/storlet/a.mjs'), server.count('GET', '/storlet/a.mjs')]).toEqual([3, 2]);
    expect([metrics.misses, metrics.fetches, metrics.fetchedBytes]).toEqual([2, 2, 4]);
    expect(metrics.hits).toBe(2);
  });

  it('fetches once for 100 concurrent resolutions of a new storlet', async () => {
    const { catalog: c, store } = catalog();
    await store.deploy(Buffer.from('shared dep'), { kind: 'dependency', name: 'dep.txt', version: '1' });
    await store.deploy(Buffer.from('code'), { ...storlet, dependencies: ['dep.txt'] });
    const all = await Promise.all(Array.from({ length: 100 }, () => c.resolve('a.mjs')));
    expect(new Set(all.map((r) => r.version)).size).toBe(1);
    expect(server.count('GET', '/storlet/a.mjs')).toBe(1);
    expect(server.count('GET', '/dependency/dep.txt')).toBe(1);
    expect(server.count('HEAD', '/storlet/a.mjs')).toBe(1);
  });

  it('discards content that does not verify and fetches again; fails with both digests if it still does not', async () => {
    const { catalog: c, store } = catalog();
    await store.deploy(Buffer.from('good'), storlet);
    server.corruptNextGets('/storlet/a.mjs', Buffer.from('evil'), 1);
    expect((await c.resolve('a.mjs')).storlet.sha256).toBe(sha('good'));
    expect(server.count('GET', '/storlet/a.mjs')).toBe(2);
    expect(warnings).toContain('fetched content did not verify; discarded, fetching again');

    await store.deploy(Buffer.from('next'), { ...storlet, name: 'b.mjs', main: 'b.mjs' });
    server.corruptNextGets('/storlet/b.mjs', Buffer.from('evil'), 2);
    await expect(c.resolve('b.mjs')).rejects.toThrow(`content does not match its digest: expected sha256 ${sha('next')}, got ${sha('evil')} (fetched twice; not run)`);
    expect(fs.readdirSync(path.join(dir, 'cache', 'objects'))).toEqual([sha('good')]);
    expect(fs.readdirSync(path.join(dir, 'cache', 'tmp'))).toEqual([]);
  });

  it('uses a verified cached copy when the store is unreachable, and says so', async () => {
    const { catalog: c, store } = catalog(1000);
    await store.deploy(Buffer.from('v1'), storlet);
    const r1 = await c.resolve('a.mjs');
    await server.close();
    clock += 1000;
    expect(await c.resolve('a.mjs')).toBe(r1);
    expect(warnings).toContain('storlet store unavailable; using the verified cached copy');
    expect(metrics.staleServed).toBe(1);
    await expect(c.resolve('never-fetched.mjs')).rejects.toThrow(/^the store http:\/\/127\.0\.0\.1:\d+\/v1\/AUTH_test is unreachable \(HEAD storlet never-fetched\.mjs: ECONNREFUSED\), and storlet never-fetched\.mjs is not cached$/);
  });

  it('after a restart, still runs what it cached while the store is down', async () => {
    const first = catalog();
    await first.store.deploy(Buffer.from('v1'), storlet);
    const r1 = await first.catalog.resolve('a.mjs');
    await server.close();
    const second = catalog();
    const r2 = await second.catalog.resolve('a.mjs');
    expect([r2.storlet.sha256, r2.version]).toEqual([r1.storlet.sha256, r1.version]);
    expect(second.catalog.namesOf(r1.storlet.sha256)).toEqual(['storlet:a.mjs']);
  });

  it('forgets a storlet the store no longer has', async () => {
    const { catalog: c, store } = catalog(0);
    await store.deploy(Buffer.from('v1'), storlet);
    await c.resolve('a.mjs');
    server.objects.delete('/storlet/a.mjs');
    await expect(c.resolve('a.mjs')).rejects.toMatchObject({ code: 'ENOSTORLET' });
    expect(fs.existsSync(path.join(dir, 'cache', 'refs', 'storlet', 'a.mjs.json'))).toBe(false);
  });

  it('catches a cached file changed on disk at the next check, refetches it and reports the repair', async () => {
    const { catalog: c, cache, store } = catalog(1000);
    await store.deploy(Buffer.from('trusted'), storlet);
    const r1 = await c.resolve('a.mjs');
    const file = cache.pathOf(r1.storlet.sha256);
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, 'hacked!');
    clock += 1000;
    const r2 = await c.resolve('a.mjs');
    expect(r2.storlet.sha256).toBe(sha('trusted'));
    expect(fs.readFileSync(file, 'utf8')).toBe('trusted');
    expect(repaired).toEqual([sha('trusted')]);
    expect(metrics.corruptions).toBe(1);
  });

  it('installs verified files with dependency permissions, refetching an entry that went bad', async () => {
    const { catalog: c, cache, store } = catalog();
    await store.deploy(Buffer.from('#!/bin/sh\necho tool\n'), { kind: 'dependency', name: 'tool.sh', version: '1', permissions: '0755' });
    await store.deploy(Buffer.from('data'), { kind: 'dependency', name: 'data.txt', version: '1' });
    await store.deploy(Buffer.from('code'), { ...storlet, dependencies: ['tool.sh', 'data.txt'] });
    const r = await c.resolve('a.mjs');
    const file = cache.pathOf(sha('data'));
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, 'DATA');
    const stage = path.join(dir, 'stage');
    fs.mkdirSync(stage);
    await c.install(r, stage);
    expect(fs.readdirSync(stage).sort()).toEqual(['a.mjs', 'data.txt', 'tool.sh']);
    expect(fs.readFileSync(path.join(stage, 'data.txt'), 'utf8')).toBe('data');
    expect(fs.statSync(path.join(stage, 'tool.sh')).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(stage, 'a.mjs')).mode & 0o777).toBe(0o444);
    expect(server.count('GET', '/dependency/data.txt')).toBe(2);
  });
});
