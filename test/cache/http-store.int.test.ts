import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HttpStore } from '../../src/cache/http-store.js';
import { collect } from '../helpers/streams.js';
import { startObjectServer, type ObjectServer } from '../helpers/object-server.js';

let server: ObjectServer;
let store: HttpStore;
const options = (url: string, token?: string) => ({ url, token, storletContainer: 'storlet', dependencyContainer: 'dependency', timeoutMs: 5000 });
beforeEach(async () => {
  server = await startObjectServer({ token: 'secret-token' });
  store = new HttpStore(options(server.url, 'secret-token'));
});
afterEach(() => server.close());

const storlet = { kind: 'storlet' as const, name: 'a.mjs', language: 'js', interfaceVersion: '1.0', objectMetadata: 'yes', main: 'a.mjs:A' };

describe('http store', () => {
  it('deploys as Swift stores registrations: X-Object-Meta-Storlet-* headers on the object', async () => {
    await store.deploy(Buffer.from('#!/bin/sh\n'), { kind: 'dependency', name: 'tool.sh', version: '2', permissions: '0755' });
    const reg = await store.deploy(Buffer.from('export function invoke() {}'), { ...storlet, dependencies: ['tool.sh'] });
    expect(reg.sha256).toBe(createHash('sha256').update('export function invoke() {}').digest('hex'));
    expect(server.objects.get('/storlet/a.mjs')!.meta).toEqual({
      'x-object-meta-storlet-language': 'js',
      'x-object-meta-storlet-interface-version': '1.0',
      'x-object-meta-storlet-dependency': 'tool.sh',
      'x-object-meta-storlet-object-metadata': 'yes',
      'x-object-meta-storlet-main': 'a.mjs:A',
      'x-object-meta-storlet-sha256': reg.sha256,
    });
    expect(server.objects.get('/dependency/tool.sh')!.meta).toMatchObject({
      'x-object-meta-storlet-dependency-version': '2',
      'x-object-meta-storlet-dependency-permissions': '0755',
    });
  });

  it('reads registration, digests and freshness from HEAD, content from GET', async () => {
    const reg = await store.deploy(Buffer.from('v1'), storlet);
    const item = await store.stat('storlet', 'a.mjs');
    const md5 = createHash('md5').update('v1').digest('hex');
    expect(item).toMatchObject({
      kind: 'storlet',
      meta: { name: 'a.mjs', main: 'a.mjs:A', objectMetadata: true, dependencies: [] },
      expected: { sha256: reg.sha256, md5, size: 2 },
    });
    expect(item.stamp).toContain(md5);
    const { body } = await store.open('storlet', 'a.mjs');
    expect((await collect(body)).toString()).toBe('v1');
    await store.deploy(Buffer.from('v2'), storlet);
    expect((await store.stat('storlet', 'a.mjs')).stamp).not.toBe(item.stamp);
  });

  it('registers objects uploaded for Storlets (no sandlet digest): verified by ETag', async () => {
    server.objects.set('/storlet/b.mjs', {
      body: Buffer.from('x'),
      etag: createHash('md5').update('x').digest('hex'),
      lastModified: new Date().toUTCString(),
      meta: { 'x-object-meta-storlet-language': 'js', 'x-object-meta-storlet-interface-version': '1.0', 'x-object-meta-storlet-object-metadata': 'no', 'x-object-meta-storlet-main': 'b.mjs' },
    });
    const item = await store.stat('storlet', 'b.mjs');
    expect(item.expected.sha256).toBeUndefined();
    expect(item.expected.md5).toBe(createHash('md5').update('x').digest('hex'));
  });

  it('names the field when an object\'s registration headers are wrong', async () => {
    server.objects.set('/storlet/c.mjs', { body: Buffer.from('x'), etag: 'e', lastModified: '', meta: { 'x-object-meta-storlet-language': 'java' } });
    await expect(store.stat('storlet', 'c.mjs')).rejects.toThrow(`storlet c.mjs in the store ${server.url}: registration: language: "java" is not supported`);
  });

  it('refuses a storlet whose dependency is not in the store', async () => {
    await expect(store.deploy(Buffer.from('x'), { ...storlet, dependencies: ['missing.txt'] })).rejects.toThrow('registration: dependency: "missing.txt" is not deployed in the store');
    expect(server.objects.size).toBe(0);
  });

  it('tells absent, refused and unreachable apart', async () => {
    await expect(store.stat('storlet', 'nope.mjs')).rejects.toMatchObject({ code: 'ENOSTORLET', message: `storlet nope.mjs is not deployed in the store ${server.url}` });
    const anonymous = new HttpStore(options(server.url));
    await expect(anonymous.stat('storlet', 'a.mjs')).rejects.toMatchObject({ code: 'ESTORE', message: expect.stringContaining('answered 401 Unauthorized to HEAD storlet a.mjs (check the store token)') });
    await server.close();
    await expect(store.stat('storlet', 'a.mjs')).rejects.toMatchObject({ code: 'ESTORE', message: expect.stringMatching(/is unreachable \(HEAD storlet a.mjs: ECONNREFUSED\)$/) });
  });

  it('refuses a bad store URL and never shows credentials', () => {
    expect(() => new HttpStore(options('ftp://x'))).toThrow('must be an http or https URL');
    expect(new HttpStore(options('http://user:pw@host:1/v1')).description).toBe('store http://host:1/v1');
  });
});
