import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema, loadConfig, resolveConfig } from '../src/config.js';
import { tempDir } from './helpers/fs.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

describe('config', () => {
  it('derives every directory from host_root', () => {
    const c = resolveConfig({ host_root: '/srv/sl' });
    expect([c.pipes_dir, c.storlets_dir, c.log_dir, c.store_dir]).toEqual(['/srv/sl/pipes', '/srv/sl/storlets', '/srv/sl/logs', '/srv/sl/store']);
    expect(c.sbus_codec).toBe('msgpack');
    expect(c.max_datagram_bytes).toBe(65536);
  });

  it('names the option and the rule on bad input', () => {
    expect(() => resolveConfig({ sbus_codec: 'xml' as never })).toThrow(/^config: sbus_codec: Invalid enum value/);
    expect(() => resolveConfig({ storlet_timeout_ms: -1 })).toThrow(/^config: storlet_timeout_ms: Number must be greater than 0/);
    expect(() => resolveConfig({ stroage_dir: '/x' } as never)).toThrow(/Unrecognized key\(s\) in object: 'stroage_dir'/);
  });

  it('parses sizes as Docker does', async () => {
    const { parseSize } = await import('../src/config.js');
    expect([parseSize('512m'), parseSize('1g'), parseSize('64k'), parseSize('1048576')]).toEqual([512 * 2 ** 20, 2 ** 30, 65536, 1048576]);
    expect(() => resolveConfig({ container_mem_limit: 'lots' })).toThrow(/container_mem_limit: must be a size such as 512m or 1g/);
  });

  it('reads YAML, then environment, then flags', () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const file = path.join(dir, 'sandlet.yaml');
    fs.writeFileSync(file, 'host_root: /from/file\nstorlet_timeout_ms: 1000\nsbus_codec: json\n');
    process.env.SANDLET_STORLET_TIMEOUT_MS = '2000';
    cleanups.push(() => delete process.env.SANDLET_STORLET_TIMEOUT_MS);
    const c = loadConfig(file, { host_root: '/from/flag' });
    expect(c.host_root).toBe('/from/flag');
    expect(c.storlet_timeout_ms).toBe(2000);
    expect(c.sbus_codec).toBe('json');
    expect(() => loadConfig(path.join(dir, 'missing.yaml'))).toThrow(/cannot read config file .*missing.yaml: ENOENT/);
  });

  it('parses the documented example', () => {
    const example = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'config', 'sandlet.example.yaml');
    const c = loadConfig(example);
    expect(c.backend).toBe('auto');
    expect(c.container_mem_limit).toBe('512m');
  });

  it('documents every option in the README and the example config', () => {
    const rootDir = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
    const readme = fs.readFileSync(path.join(rootDir, 'README.md'), 'utf8');
    const example = fs.readFileSync(path.join(rootDir, 'config', 'sandlet.example.yaml'), 'utf8');
    for (const key of Object.keys(configSchema.shape)) {
      expect(readme, `README lacks ${key}`).toContain(`\`${key}\``);
      expect(example, `example lacks ${key}`).toMatch(new RegExp(`^#? ?${key}:`, 'm'));
    }
  });

  it('reads booleans from the environment as written', () => {
    expect(resolveConfig({ stop_sandboxes_on_close: 'false' } as never).stop_sandboxes_on_close).toBe(false);
    expect(resolveConfig({ stop_sandboxes_on_close: 'yes' } as never).stop_sandboxes_on_close).toBe(true);
    expect(() => resolveConfig({ stop_sandboxes_on_close: 'maybe' } as never)).toThrow('config: stop_sandboxes_on_close: must be true or false');
  });

  it('checks the store and cache options', () => {
    const c = resolveConfig({ host_root: '/r' });
    expect([c.storlet_store, c.cache_dir, c.cache_max_bytes, c.cache_ttl]).toEqual(['local', '/r/cache', '1g', 10]);
    expect(() => resolveConfig({ storlet_store: 'swift' })).toThrow('config: storlet_store: must be "local" or an http(s) URL');
    expect(() => resolveConfig({ cache_max_bytes: 'lots' })).toThrow('config: cache_max_bytes: must be a size');
    expect(() => resolveConfig({ cache_ttl: -1 } as never)).toThrow(/config: cache_ttl:/);
  });
});
