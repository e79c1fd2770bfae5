import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema, envOverrides, loadConfig, resolveConfig, TOOL_ENV_VARS } from '../src/config.js';
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
    expect(() => resolveConfig({ stroage_dir: '/x' } as never)).toThrow(/^config: unknown option stroage_dir \(did you mean store_dir\?\)$/);
    expect(() => resolveConfig({ zzz: 1 } as never)).toThrow(/^config: unknown option zzz$/);
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

  it('puts a command\'s own defaults below the file and the environment, and flags above both', () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const file = path.join(dir, 'sandlet.yaml');
    fs.writeFileSync(file, 'log_level: info\n');
    const defaults = { log_level: 'warn', storlet_timeout_ms: 7 };
    expect(loadConfig(undefined, {}, defaults).log_level).toBe('warn');
    expect(loadConfig(file, { log_level: undefined }, defaults).log_level).toBe('info');
    process.env.SANDLET_LOG_LEVEL = 'debug';
    cleanups.push(() => delete process.env.SANDLET_LOG_LEVEL);
    const c = loadConfig(file, { log_level: undefined }, defaults);
    expect([c.log_level, c.storlet_timeout_ms]).toEqual(['debug', 7]);
    expect(loadConfig(file, { log_level: 'error' }, defaults).log_level).toBe('error');
  });

  it('refuses unknown SANDLET_* variables, naming the likely one but never the value', () => {
    expect(() => envOverrides({ SANDLET_STORLET_TIMEOUT: '5000' })).toThrow(
      /^environment: SANDLET_STORLET_TIMEOUT is not a sandlet setting \(did you mean SANDLET_STORLET_TIMEOUT_MS\?\)$/,
    );
    expect(() => envOverrides({ SANDLET_STORE_TOKN: 'hunter2' })).toThrow(/did you mean SANDLET_STORE_TOKEN\?/);
    expect(() => envOverrides({ SANDLET_STORE_TOKN: 'hunter2' })).not.toThrow(/hunter2/);
    expect(() => envOverrides({ SANDLET_TOKN: 'x' })).toThrow(/did you mean SANDLET_TOKEN\?/);
    expect(() => envOverrides({ SANDLET_QQQ: '' })).toThrow(/^environment: SANDLET_QQQ is not a sandlet setting$/);
    // The tools' own variables, and anything not SANDLET_*, pass; options are read.
    const tools = Object.fromEntries(Object.keys(TOOL_ENV_VARS).map((k) => [k, 'x']));
    expect(envOverrides({ ...tools, PATH: '/bin', SANDLET_LOG_LEVEL: 'debug', SANDLET_IDLE_TIMEOUT: '' })).toEqual({ log_level: 'debug' });
    expect(Object.keys(TOOL_ENV_VARS)).toEqual(expect.arrayContaining(['SANDLET_TOKEN', 'SANDLET_NODE18', 'SANDLET_TEST_IMAGE', 'SANDLET_SERVER']));
  });

  it('knows every SANDLET_* variable the project reads or documents', () => {
    const rootDir = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
    const known = new Set([...Object.keys(configSchema.shape).map((k) => `SANDLET_${k.toUpperCase()}`), ...Object.keys(TOOL_ENV_VARS)]);
    const seen = new Set<string>();
    const walk = (p: string): void => {
      const st = fs.statSync(p);
      if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
      // This file misspells some on purpose.
      else if (p !== new URL(import.meta.url).pathname) for (const m of fs.readFileSync(p, 'utf8').matchAll(/\bSANDLET_[A-Z0-9_]+\b/g)) seen.add(m[0]);
    };
    for (const p of ['src', 'test', 'bench', 'scripts', '.ci', 'README.md', 'config']) if (fs.existsSync(path.join(rootDir, p))) walk(path.join(rootDir, p));
    expect(seen.size).toBeGreaterThan(3);
    // Misspelt on purpose by the CLI test and the README's example of the refusal.
    const typos = ['SANDLET_LOG_LEVL'];
    for (const t of typos) expect(() => envOverrides({ [t]: 'x' })).toThrow(/is not a sandlet setting/);
    // SANDLET_FD_* name SBus fds, not variables.
    expect([...seen].filter((v) => !known.has(v) && !typos.includes(v) && !v.startsWith('SANDLET_FD_'))).toEqual([]);
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
