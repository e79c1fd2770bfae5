import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpStore } from '../../src/cache/http-store.js';
import { collect } from '../helpers/streams.js';
import { requireSwift, skipSwift, startSwift, swiftToken, SWIFT_USERS, type TestSwift } from '../helpers/swift.js';

// The HTTP storlet store against a real Swift (Debian's, started by the test): Swift's own
// answers, headers and ETags, not a stand-in's.
describe.skipIf(skipSwift)('http store on a real Swift', () => {
  let swift: TestSwift;
  let token: string;
  let store: HttpStore;
  let account: string;
  const options = (url: string, t?: string) => ({ url, token: t, storletContainer: 'storlet', dependencyContainer: 'dependency', timeoutMs: 5000 });
  const swiftApi = (p: string, init: RequestInit = {}): Promise<Response> => fetch(`${account}${p}`, { ...init, headers: { 'x-auth-token': token, ...(init.headers as Record<string, string>) } });
  const storlet = { kind: 'storlet' as const, name: 'a.mjs', language: 'js', interfaceVersion: '1.0', objectMetadata: 'yes', main: 'a.mjs:A' };

  beforeAll(async () => {
    requireSwift();
    swift = await startSwift();
    token = await swiftToken(swift.url, SWIFT_USERS.admin);
    account = `${swift.url}/v1/${SWIFT_USERS.admin.account}`;
    store = new HttpStore(options(account, token));
  });
  afterAll(() => swift?.stop());

  it('deploys as Swift stores registrations (creating the containers): X-Object-Meta-Storlet-* headers', async () => {
    await store.deploy(Buffer.from('#!/bin/sh\n'), { kind: 'dependency', name: 'tool.sh', version: '2', permissions: '0755' });
    const reg = await store.deploy(Buffer.from('export function invoke() {}'), { ...storlet, dependencies: ['tool.sh'] });
    expect(reg.sha256).toBe(createHash('sha256').update('export function invoke() {}').digest('hex'));
    const head = await swiftApi('/storlet/a.mjs', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Object.fromEntries([...head.headers].filter(([k]) => k.startsWith('x-object-meta-')))).toEqual({
      'x-object-meta-storlet-language': 'js',
      'x-object-meta-storlet-interface-version': '1.0',
      'x-object-meta-storlet-dependency': 'tool.sh',
      'x-object-meta-storlet-object-metadata': 'yes',
      'x-object-meta-storlet-main': 'a.mjs:A',
      'x-object-meta-storlet-sha256': reg.sha256,
    });
    const dep = await swiftApi('/dependency/tool.sh', { method: 'HEAD' });
    expect(dep.headers.get('x-object-meta-storlet-dependency-version')).toBe('2');
    expect(dep.headers.get('x-object-meta-storlet-dependency-permissions')).toBe('0755');
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

  it('registers objects uploaded for Storlets (no sandlet digest): verified by Swift\'s ETag', async () => {
    const put = await swiftApi('/storlet/b.mjs', {
      method: 'PUT',
      body: 'x',
      headers: { 'x-object-meta-storlet-language': 'js', 'x-object-meta-storlet-interface-version': '1.0', 'x-object-meta-storlet-object-metadata': 'no', 'x-object-meta-storlet-main': 'b.mjs' },
    });
    expect(put.status).toBe(201);
    const item = await store.stat('storlet', 'b.mjs');
    expect(item.expected.sha256).toBeUndefined();
    expect(item.expected.md5).toBe(createHash('md5').update('x').digest('hex'));
  });

  it('names the field when an object\'s registration headers are wrong', async () => {
    await swiftApi('/storlet/c.mjs', { method: 'PUT', body: 'x', headers: { 'x-object-meta-storlet-language': 'java' } });
    await expect(store.stat('storlet', 'c.mjs')).rejects.toThrow(`storlet c.mjs in the store ${account}: registration: language: "java" is not supported`);
  });

  it('refuses a storlet whose dependency is not in the store, storing nothing', async () => {
    await expect(store.deploy(Buffer.from('x'), { ...storlet, name: 'd.mjs', main: 'd.mjs', dependencies: ['missing.txt'] })).rejects.toThrow('registration: dependency: "missing.txt" is not deployed in the store');
    expect((await swiftApi('/storlet/d.mjs', { method: 'HEAD' })).status).toBe(404);
  });

  it('tells absent, refused and unreachable apart, and never shows credentials', async () => {
    await expect(store.stat('storlet', 'nope.mjs')).rejects.toMatchObject({ code: 'ENOSTORLET', message: `storlet nope.mjs is not deployed in the store ${account}` });
    const anonymous = new HttpStore(options(account));
    await expect(anonymous.stat('storlet', 'a.mjs')).rejects.toMatchObject({ code: 'ESTORE', status: 401, message: expect.stringContaining('answered 401 Unauthorized to HEAD storlet a.mjs (check the store token)') });
    const other = new HttpStore(options(account, await swiftToken(swift.url, SWIFT_USERS.other)));
    await expect(other.stat('storlet', 'a.mjs')).rejects.toMatchObject({ code: 'ESTORE', status: 403 });
    const closed = net.createServer().listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as net.AddressInfo).port;
    closed.close();
    const dead = new HttpStore(options(`http://127.0.0.1:${port}/v1/AUTH_test`, token));
    const err = await dead.stat('storlet', 'a.mjs').catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'ESTORE', message: expect.stringMatching(/is unreachable \(HEAD storlet a.mjs: ECONNREFUSED\)$/) });
    expect(String((err as Error).message)).not.toContain(token);
  });

  it('refuses a bad store URL and never shows credentials in its description', () => {
    expect(() => new HttpStore(options('ftp://x'))).toThrow('must be an http or https URL');
    expect(new HttpStore(options('http://user:pw@host:1/v1')).description).toBe('store http://host:1/v1');
  });
});
