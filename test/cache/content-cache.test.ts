import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CacheMetrics } from '../../src/cache/cache-metrics.js';
import { ContentCache } from '../../src/cache/content-cache.js';
import { tempDir } from '../helpers/fs.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const md5 = (b: Buffer | string): string => createHash('md5').update(b).digest('hex');
const logger = pino({ level: 'silent' });

let dir: string;
let cleanup: () => void;
let metrics: CacheMetrics;
let inUse: Set<string>;
beforeEach(() => {
  ({ dir, cleanup } = tempDir());
  metrics = new CacheMetrics();
  inUse = new Set();
});
afterEach(() => cleanup());

function cache(maxBytes = 1 << 20, cacheDir = path.join(dir, 'cache')): ContentCache {
  const c = new ContentCache({ dir: cacheDir, maxBytes, logger, metrics, inUse: () => inUse });
  c.open();
  return c;
}

function body(content: string | Buffer): Readable {
  return Readable.from([Buffer.from(content)]);
}

const tmpFiles = (c: ContentCache): string[] => fs.readdirSync(path.join(c.dir, 'tmp'));

describe('content cache', () => {
  it('stores content under its sha256, read-only, and keeps identical content once', async () => {
    const c = cache();
    const a = await c.put(body('hello'), { sha256: sha('hello'), md5: md5('hello'), size: 5 }, 'storlet a');
    expect(a).toEqual({ sha256: sha('hello'), size: 5 });
    const file = c.pathOf(a.sha256);
    expect(fs.readFileSync(file, 'utf8')).toBe('hello');
    expect(fs.statSync(file).mode & 0o777).toBe(0o444);
    const st = fs.statSync(file);
    await c.put(body('hello'), {}, 'storlet b');
    expect(fs.statSync(file).ino).toBe(st.ino);
    expect(c.totalBytes).toBe(5);
    expect(tmpFiles(c)).toEqual([]);
  });

  it.each([
    [{ sha256: sha('other') }, `storlet a: content does not match its digest: expected sha256 ${sha('other')}, got ${sha('hello')}`],
    [{ md5: md5('other') }, `storlet a: content does not match its ETag: expected md5 ${md5('other')}, got ${md5('hello')}`],
    [{ size: 4 }, 'storlet a: the store sent more than the 4 bytes it announced'],
    [{ size: 6 }, 'storlet a: expected 6 bytes, got 5'],
  ])('refuses content that does not match %j, keeping nothing', async (expected, message) => {
    const c = cache();
    await expect(c.put(body('hello'), expected, 'storlet a')).rejects.toThrow(message);
    expect(c.has(sha('hello'))).toBe(false);
    expect(fs.readdirSync(path.join(c.dir, 'objects'))).toEqual([]);
    expect(tmpFiles(c)).toEqual([]);
    expect(c.totalBytes).toBe(0);
  });

  it('refuses content larger than the whole cache', async () => {
    const c = cache(100);
    await expect(c.put(body(Buffer.alloc(101)), {}, 'storlet big.mjs')).rejects.toThrow('storlet big.mjs is larger than the whole cache (cache_max_bytes 100); nothing kept');
    expect(tmpFiles(c)).toEqual([]);
  });

  it('keeps nothing when the source stream fails halfway', async () => {
    const c = cache();
    const failing = new Readable({
      read() {
        this.push(Buffer.alloc(1000, 1));
        this.destroy(new Error('connection reset'));
      },
    });
    await expect(c.put(failing, {}, 'storlet a')).rejects.toThrow('connection reset');
    expect(tmpFiles(c)).toEqual([]);
    expect(c.totalBytes).toBe(0);
  });

  it('evicts least recently used entries to stay under the cap, never an entry in use', async () => {
    const c = cache(3000);
    const put = async (fill: number): Promise<string> => (await c.put(body(Buffer.alloc(1000, fill)), {}, `item ${fill}`)).sha256;
    const a = await put(1);
    const b = await put(2);
    const d = await put(3);
    // a is used again (newest), b is in use by a daemon: e must push out d, then a, never b.
    await c.verifiedPath(a);
    inUse.add(b);
    const e = await put(4);
    expect([c.has(a), c.has(b), c.has(d), c.has(e)]).toEqual([true, true, false, true]);
    const f = await put(5);
    expect([c.has(a), c.has(b), c.has(e), c.has(f)]).toEqual([false, true, true, true]);
    expect(c.totalBytes).toBeLessThanOrEqual(3000);
    expect(metrics.evictions).toBe(2);
    expect(metrics.evictedBytes).toBe(2000);
    expect(fs.existsSync(c.pathOf(d))).toBe(false);
  });

  it('goes over its cap rather than evict entries in use', async () => {
    const c = cache(1500);
    const a = (await c.put(body(Buffer.alloc(1000, 1)), {}, 'a')).sha256;
    inUse.add(a);
    const b = (await c.put(body(Buffer.alloc(1000, 2)), {}, 'b')).sha256;
    expect(c.has(a) && c.has(b)).toBe(true);
    inUse.clear();
    expect(c.evict().map((r) => r.sha256)).toEqual([a]);
  });

  it('sweeps temp files and rebuilds its index from disk, hashing old entries before use', async () => {
    const first = cache();
    const a = await first.put(body('alpha'), {}, 'a');
    const b = await first.put(body('bravo'), {}, 'b');
    fs.writeFileSync(path.join(first.dir, 'tmp', '.tmp-put.abc123'), 'half a put');
    fs.writeFileSync(path.join(first.dir, 'objects', 'not-a-digest'), 'junk');
    // b's bytes change while no gateway runs.
    fs.chmodSync(first.pathOf(b.sha256), 0o644);
    fs.writeFileSync(first.pathOf(b.sha256), 'BRAVO');
    const second = cache();
    expect(tmpFiles(second)).toEqual([]);
    expect(fs.readdirSync(path.join(second.dir, 'objects')).sort()).toEqual([a.sha256, b.sha256].sort());
    expect(second.totalBytes).toBe(10);
    expect(await second.verifiedPath(a.sha256)).toBe(second.pathOf(a.sha256));
    await expect(second.verifiedPath(b.sha256)).rejects.toThrow(`cached file ${b.sha256} is corrupted: expected sha256 ${b.sha256}, got ${sha('BRAVO')}`);
    expect(second.has(b.sha256)).toBe(false);
    expect(fs.existsSync(second.pathOf(b.sha256))).toBe(false);
    expect(metrics.corruptions).toBe(1);
  });

  it('detects bytes changed on disk after they were verified', async () => {
    const c = cache();
    const a = await c.put(body('original'), {}, 'a');
    await c.verifiedPath(a.sha256);
    const file = c.pathOf(a.sha256);
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, 'tampered');
    await expect(c.verifiedPath(a.sha256)).rejects.toMatchObject({ code: 'EDIGEST' });
    await expect(c.verifiedPath(a.sha256)).rejects.toMatchObject({ code: 'ECACHEMISS' });
  });

  it('verifyAll reports and removes what changed', async () => {
    const c = cache();
    const a = await c.put(body('one'), {}, 'a');
    const b = await c.put(body('two'), {}, 'b');
    fs.chmodSync(c.pathOf(b.sha256), 0o644);
    fs.writeFileSync(c.pathOf(b.sha256), 'TWO');
    expect(await c.verifyAll()).toEqual({ ok: 1, corrupt: [{ sha256: b.sha256, actual: sha('TWO') }] });
    expect(c.has(a.sha256)).toBe(true);
  });

  it('installs private read-only copies, never the cache\'s inode, and copies with their own mode', async () => {
    const c = cache();
    const a = await c.put(body('#!/bin/sh\necho hi\n'), {}, 'a');
    const stage = path.join(dir, 'stage');
    fs.mkdirSync(stage);
    const copied = await c.install(a.sha256, path.join(stage, 'plain'));
    expect(copied.ino).toBe(fs.statSync(path.join(stage, 'plain')).ino);
    expect(copied.ino).not.toBe(fs.statSync(c.pathOf(a.sha256)).ino);
    expect(fs.statSync(path.join(stage, 'plain')).mode & 0o777).toBe(0o444);
    // Rewriting the cache file in place leaves the installed copy as it was verified.
    fs.chmodSync(c.pathOf(a.sha256), 0o644);
    fs.writeFileSync(c.pathOf(a.sha256), '#!/bin/sh\necho XX\n');
    expect(fs.readFileSync(path.join(stage, 'plain'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    fs.writeFileSync(c.pathOf(a.sha256), '#!/bin/sh\necho hi\n');
    fs.chmodSync(c.pathOf(a.sha256), 0o444);
    await c.install(a.sha256, path.join(stage, 'tool.sh'), { mode: 0o755 });
    expect(fs.statSync(path.join(stage, 'tool.sh')).mode & 0o777).toBe(0o755);
    expect(execFileSync(path.join(stage, 'tool.sh'), { encoding: 'utf8' })).toBe('hi\n');
    expect(fs.statSync(c.pathOf(a.sha256)).mode & 0o777).toBe(0o444);
    expect(c.list()[0]).toMatchObject({ sha256: a.sha256, links: 0 });
  });

  it('an unwritable cache (immutable dir: EPERM) fails a put as ECACHE naming the path, and still serves what it holds', async (ctx) => {
    const c = cache();
    const a = await c.put(body('kept'), {}, 'a');
    const tmp = path.join(c.dir, 'tmp');
    try {
      execFileSync('chattr', ['+i', tmp], { stdio: 'ignore' });
    } catch {
      ctx.skip(); // chattr needs root and a file system that supports it
    }
    try {
      const err = await c.put(body('new'), {}, 'storlet n.mjs').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ECACHE' });
      expect((err as Error).message).toMatch(new RegExp(`^cannot cache storlet n.mjs: writing ${tmp}/\\.tmp-put\\.[0-9a-f]+ failed: EPERM$`));
      expect(await c.verifiedPath(a.sha256)).toBe(c.pathOf(a.sha256));
    } finally {
      execFileSync('chattr', ['-i', tmp]);
    }
  });
});

// Real filesystems: a small tmpfs to fill, and a second filesystem to link across.
describe.runIf(process.geteuid?.() === 0)('content cache on a small filesystem', () => {
  let mnt: string;
  beforeEach(() => {
    mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
  });
  afterEach(() => execFileSync('umount', ['-l', mnt]));

  it('fails a put on a full disk with a clear error, leaving no partial file and a consistent index', async () => {
    const c = cache(1 << 30, path.join(mnt, 'cache'));
    const small = await c.put(body('small'), {}, 'small');
    const big = Readable.from((function* () {
      for (let i = 0; i < 64; i++) yield Buffer.alloc(16 * 1024, i);
    })());
    await expect(c.put(big, {}, 'storlet big.mjs')).rejects.toThrow(/^disk full while caching storlet big.mjs in .* \(\d+ bytes written, none kept\): ENOSPC$/);
    expect(tmpFiles(c)).toEqual([]);
    expect(fs.readdirSync(path.join(c.dir, 'objects'))).toEqual([small.sha256]);
    expect(c.totalBytes).toBe(5);
    expect(await c.verifiedPath(small.sha256)).toBeTruthy();
    // Still usable once space is back.
    expect((await c.put(body('after'), {}, 'after')).size).toBe(5);
  });

  it('copies into a dir on another filesystem', async () => {
    const c = cache(1 << 20, path.join(mnt, 'cache'));
    const a = await c.put(body('content'), {}, 'a');
    const stage = path.join(dir, 'stage');
    fs.mkdirSync(stage);
    await c.install(a.sha256, path.join(stage, 'a'));
    expect(fs.readFileSync(path.join(stage, 'a'), 'utf8')).toBe('content');
    expect(fs.statSync(path.join(stage, 'a')).mode & 0o777).toBe(0o444);
  });
});
