import { describe, expect, it } from 'vitest';
import { ScopePaths } from '../../src/runtime/scope-paths.js';

const host = { pipesDir: '/var/lib/sandlet/pipes', storletsDir: '/var/lib/sandlet/storlets', logDir: '/var/lib/sandlet/logs' };

describe('scope paths', () => {
  it('maps host and sandbox paths as the architecture table says', () => {
    const p = new ScopePaths('AUTH_t1', host, { pipesDir: '/mnt/channels', storletsDir: '/home/storlet' });
    expect(p.hostFactoryPipe).toBe('/var/lib/sandlet/pipes/AUTH_t1/factory_pipe');
    expect(p.sandboxFactoryPipe).toBe('/mnt/channels/factory_pipe');
    expect(p.hostStorletPipe('rot13.mjs')).toBe('/var/lib/sandlet/pipes/AUTH_t1/rot13.mjs');
    expect(p.sandboxStorletPipe('rot13.mjs')).toBe('/mnt/channels/rot13.mjs');
    expect(p.hostStorletDir('rot13.mjs')).toBe('/var/lib/sandlet/storlets/AUTH_t1/rot13.mjs');
    expect(p.sandboxStorletDir('rot13.mjs')).toBe('/home/storlet/rot13.mjs');
    expect(p.hostLogPath('rot13.mjs')).toBe('/var/lib/sandlet/logs/AUTH_t1/rot13.mjs/storlet_invoke.log');
  });

  it('uses the host paths inside the sandbox by default (process backend)', () => {
    expect(new ScopePaths('s', host).sandboxFactoryPipe).toBe('/var/lib/sandlet/pipes/s/factory_pipe');
  });

  it('never builds a path from a hostile name', () => {
    expect(() => new ScopePaths('..', host)).toThrow(/not allowed/);
    const p = new ScopePaths('s', host);
    expect(() => p.hostStorletDir('../../../etc')).toThrow(/may only hold/);
  });

  it('refuses socket paths longer than sun_path holds, naming the fix', () => {
    const deep = { ...host, pipesDir: `/${'d'.repeat(90)}` };
    expect(() => new ScopePaths('scope-with-long-name', deep)).toThrow(/unix socket paths hold at most 107: choose a shorter pipes_dir/);
  });
});
