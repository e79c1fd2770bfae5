import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalStore } from '../../src/cache/local-store.js';
import { replaceDir } from '../../src/cache/scope-installer.js';
import { collect } from '../helpers/streams.js';
import { tempDir } from '../helpers/fs.js';

let dir: string;
let cleanup: () => void;
let store: LocalStore;
beforeEach(() => {
  ({ dir, cleanup } = tempDir());
  store = new LocalStore(path.join(dir, 'store'));
});
afterEach(() => cleanup());

const reg = { name: 'a.mjs', language: 'js', interfaceVersion: '1.0', objectMetadata: 'no', main: 'a.mjs' };

describe('local store', () => {
  it('stores content by digest and the registration beside it, leaving no temp files', () => {
    const r = store.deployStorlet(Buffer.from('export function invoke() {}'), reg);
    expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(fs.readFileSync(store.objectPath(r.sha256), 'utf8')).toBe('export function invoke() {}');
    expect(store.getStorlet('a.mjs')).toEqual(r);
    expect(fs.readdirSync(path.join(dir, 'store', 'tmp'))).toEqual([]);
    expect(store.listStorlets().map((s) => s.name)).toEqual(['a.mjs']);
  });

  it('refuses a dependency that is not deployed, and accepts it once it is', () => {
    expect(() => store.deployStorlet(Buffer.from('x'), { ...reg, dependencies: ['lib.txt'] })).toThrow(/"lib.txt" is not deployed/);
    store.deployDependency(Buffer.from('lib'), { name: 'lib.txt', version: '1.0' });
    expect(store.deployStorlet(Buffer.from('x'), { ...reg, dependencies: ['lib.txt'] }).dependencies).toEqual(['lib.txt']);
  });

  it('keeps a dependency\'s version and permissions', () => {
    const d = store.deployDependency(Buffer.from('#!/bin/sh\n'), { name: 'tool.sh', version: '2.1', permissions: '0755' });
    expect(d).toMatchObject({ kind: 'dependency', name: 'tool.sh', version: '2.1', permissions: 0o755 });
    expect(() => store.deployDependency(Buffer.from('x'), { name: 'lib.txt' })).toThrow('registration: dependency version: is mandatory');
  });

  it('says which storlet is missing', () => {
    expect(() => store.getStorlet('nope.mjs')).toThrow(`storlet nope.mjs is not deployed in the local store ${path.join(dir, 'store')}`);
  });

  it('serves stat and content through the store interface, the digest being the stamp', async () => {
    const r = store.deployStorlet(Buffer.from('v1'), reg);
    const item = await store.stat('storlet', 'a.mjs');
    expect(item).toMatchObject({ kind: 'storlet', stamp: r.sha256, expected: { sha256: r.sha256, size: 2 }, meta: { main: 'a.mjs' } });
    const { body } = await store.open('storlet', 'a.mjs');
    expect((await collect(body)).toString()).toBe('v1');
    await expect(store.stat('dependency', 'nope')).rejects.toThrow('dependency nope is not deployed');
    await expect(store.stat('storlet', '../x')).rejects.toThrow(/may only hold/);
  });

  it('swaps a scope dir whole: the old set or the new, and no staging left on failure', async () => {
    const target = path.join(dir, 'storlets', 'scope', 'a.mjs');
    await replaceDir(target, async (stage) => {
      fs.writeFileSync(path.join(stage, 'a.mjs'), 'v1');
      fs.writeFileSync(path.join(stage, 'lib.txt'), 'lib');
    });
    expect(fs.readdirSync(target).sort()).toEqual(['a.mjs', 'lib.txt']);
    await replaceDir(target, async (stage) => fs.writeFileSync(path.join(stage, 'a.mjs'), 'v2'));
    expect(fs.readdirSync(target)).toEqual(['a.mjs']);
    expect(fs.readFileSync(path.join(target, 'a.mjs'), 'utf8')).toBe('v2');
    await expect(
      replaceDir(target, async (stage) => {
        fs.writeFileSync(path.join(stage, 'a.mjs'), 'v3');
        throw new Error('fill failed');
      }),
    ).rejects.toThrow('fill failed');
    expect(fs.readFileSync(path.join(target, 'a.mjs'), 'utf8')).toBe('v2');
    expect(fs.readdirSync(path.dirname(target))).toEqual(['a.mjs']);
  });
});
