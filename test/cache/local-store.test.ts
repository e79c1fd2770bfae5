import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalStore, storletVersion } from '../../src/cache/local-store.js';
import { installStorlet } from '../../src/cache/scope-installer.js';
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
    store.deployDependency(Buffer.from('lib'), 'lib.txt');
    expect(store.deployStorlet(Buffer.from('x'), { ...reg, dependencies: ['lib.txt'] }).dependencies).toEqual(['lib.txt']);
  });

  it('says which storlet is missing', () => {
    expect(() => store.getStorlet('nope.mjs')).toThrow(`storlet nope.mjs is not deployed (store ${path.join(dir, 'store')})`);
  });

  it('changes the version when the storlet or a dependency changes', () => {
    const dep1 = store.deployDependency(Buffer.from('v1'), 'lib.txt');
    const s = store.deployStorlet(Buffer.from('x'), { ...reg, dependencies: ['lib.txt'] });
    const dep2 = store.deployDependency(Buffer.from('v2'), 'lib.txt');
    expect(storletVersion(s, [dep1])).not.toBe(storletVersion(s, [dep2]));
  });

  it('installs a storlet and its dependencies into a scope dir, replacing the old set whole', async () => {
    const dep = store.deployDependency(Buffer.from('lib'), 'lib.txt');
    const s = store.deployStorlet(Buffer.from('v1'), { ...reg, dependencies: ['lib.txt'] });
    const target = path.join(dir, 'storlets', 'scope', 'a.mjs');
    await installStorlet(store, target, s, [dep]);
    expect(fs.readdirSync(target).sort()).toEqual(['a.mjs', 'lib.txt']);
    const s2 = store.deployStorlet(Buffer.from('v2'), reg);
    await installStorlet(store, target, s2, []);
    expect(fs.readdirSync(target)).toEqual(['a.mjs']);
    expect(fs.readFileSync(path.join(target, 'a.mjs'), 'utf8')).toBe('v2');
    expect(fs.readdirSync(path.dirname(target))).toEqual(['a.mjs']);
  });
});
