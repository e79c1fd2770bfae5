// Python and exec storlets deployed and invoked over HTTP, registered with Swift's headers.
import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLES_DIR } from '../../src/package-root.js';
import { call, json, startTestServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ storlet_timeout_ms: 5000 });
});
afterAll(async () => {
  await s?.close();
});

const put = (name: string, file: string, headers: Record<string, string>) =>
  call(s, 'PUT', `/v1/storlets/${name}`, {
    token: s.tokens.admin,
    body: fs.readFileSync(path.join(SAMPLES_DIR, file)),
    headers: { 'X-Object-Meta-Storlet-Interface-Version': '1.0', 'X-Object-Meta-Storlet-Object-Metadata': 'no', ...headers },
  });

describe('python and exec storlets over HTTP', () => {
  it('deploys a Python storlet with Storlets headers and invokes it', async () => {
    const r = await put('uppercase.py', 'uppercase.py', {
      'X-Object-Meta-Storlet-Language': 'python',
      'X-Object-Meta-Storlet-Language-Version': '3',
      'X-Object-Meta-Storlet-Main': 'uppercase.UpperStorlet',
    });
    expect(r.status).toBe(201);
    expect(json(r)).toMatchObject({ kind: 'storlet', name: 'uppercase.py', language: 'python', languageVersion: '3', main: 'uppercase.UpperStorlet' });
    const out = await call(s, 'POST', '/v1/invoke/http-lang/uppercase.py', { token: s.tokens.invoke, body: 'over http\n' });
    expect(out.status).toBe(200);
    expect(out.body.toString()).toBe('OVER HTTP\n');
  });

  it('deploys an exec storlet and invokes it', async () => {
    expect((await put('gzip.sh', 'gzip.sh', { 'X-Object-Meta-Storlet-Language': 'exec', 'X-Object-Meta-Storlet-Main': 'gzip.sh' })).status).toBe(201);
    const out = await call(s, 'POST', '/v1/invoke/http-lang/gzip.sh', { token: s.tokens.invoke, body: 'squeeze' });
    expect(out.status).toBe(200);
    expect(gunzipSync(out.body).toString()).toBe('squeeze');
  });

  it('refuses registrations that break the Storlets rules for Python', async () => {
    const bad = async (name: string, headers: Record<string, string>) => json(await put(name, 'uppercase.py', { 'X-Object-Meta-Storlet-Language': 'python', ...headers })).error;
    expect(await bad('uppercase.py', { 'X-Object-Meta-Storlet-Main': 'other.UpperStorlet' })).toMatch(/^registration: main: must be uppercase\.ClassName/);
    expect(await bad('uppercase.py', { 'X-Object-Meta-Storlet-Main': 'uppercase.pkg.UpperStorlet' })).toMatch(/^registration: main: must be uppercase\.ClassName/);
    expect(await bad('uppercase.py', { 'X-Object-Meta-Storlet-Main': 'uppercase.UpperStorlet', 'X-Object-Meta-Storlet-Language-Version': '2.7' })).toMatch(/^registration: language version: python storlets run on Python 3/);
    expect(await bad('upper.txt', { 'X-Object-Meta-Storlet-Main': 'upper.UpperStorlet' })).toMatch(/^registration: name: a python storlet is a module file/);
  });
});
