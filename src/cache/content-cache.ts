// The node's content cache: files addressed by sha256 under <cache_dir>/objects, each put as a temp
// file, fsync, rename, and verified against its digest before it is used. Bounded by size: least
// recently used entries go first, never one a running daemon uses.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { SandletError } from '../errors.js';
import { sweepTemps, tempName } from './atomic-file.js';
import type { CacheMetrics } from './cache-metrics.js';
import { identity, sameIdentity, type FileIdentity } from './file-identity.js';

const DIGEST_RE = /^[0-9a-f]{64}$/;

export interface Expected {
  sha256?: string;
  md5?: string;
  size?: number;
}

interface Entry {
  size: number;
  /** Wall clock, for listings. */
  lastUsed: number;
  /** Use order (a counter: ties in the clock must not blur LRU). */
  order: number;
  /** The file's identity when its bytes were last hashed; a change means hashing again. */
  verified?: FileIdentity;
}

export interface CacheEntryInfo {
  sha256: string;
  size: number;
  lastUsed: Date;
  /** Other names of the file (hard links). Scope dirs hold private copies, so this is 0 unless someone linked it. */
  links: number;
}

export interface ContentCacheOptions {
  dir: string;
  maxBytes: number;
  logger: Logger;
  metrics: CacheMetrics;
  /** Digests a running daemon uses: never evicted. */
  inUse?: () => Iterable<string>;
}

export class ContentCache {
  readonly dir: string;
  readonly maxBytes: number;
  private readonly opts: ContentCacheOptions;
  private readonly index = new Map<string, Entry>();
  private total = 0;
  private tick = 0;
  private opened = false;

  constructor(opts: ContentCacheOptions) {
    this.opts = opts;
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes;
  }

  private get objects(): string {
    return path.join(this.dir, 'objects');
  }

  private get tmp(): string {
    return path.join(this.dir, 'tmp');
  }

  pathOf(sha256: string): string {
    if (!DIGEST_RE.test(sha256)) throw new SandletError('EDIGEST', `${JSON.stringify(sha256)} is not a sha256 hex digest`);
    return path.join(this.objects, sha256);
  }

  /**
   * Sweeps temp files a crash left and rebuilds the index from the files on disk. Files whose name
   * is not a digest are removed; the others are hashed again before their first use.
   */
  open(): void {
    if (this.opened) return;
    for (const [dir, mode] of [[this.objects, 0o755], [this.tmp, 0o700]] as const) {
      try {
        fs.mkdirSync(dir, { recursive: true, mode });
      } catch (err) {
        throw cacheError(err, `cannot create the cache dir ${dir}`);
      }
    }
    let swept = 0;
    try {
      swept = sweepTemps(this.tmp) + sweepTemps(this.objects);
    } catch (err) {
      // An unwritable cache can still serve what it holds verified: say so, and go on.
      this.opts.logger.warn({ dir: this.dir, err: (err as Error).message }, 'cache: cannot remove temp files left by an interrupted put');
    }
    this.index.clear();
    this.total = 0;
    const found: [string, fs.Stats][] = [];
    for (const name of fs.readdirSync(this.objects)) {
      const file = path.join(this.objects, name);
      if (!DIGEST_RE.test(name)) {
        fs.rmSync(file, { force: true, recursive: true });
        continue;
      }
      const st = fs.statSync(file);
      if (!st.isFile()) {
        fs.rmSync(file, { force: true, recursive: true });
        continue;
      }
      found.push([name, st]);
    }
    // Recency is not written to disk: the last access (relatime) or put time stands in for it.
    const seen = (st: fs.Stats): number => Math.max(st.atimeMs, st.mtimeMs);
    for (const [name, st] of found.sort((a, b) => seen(a[1]) - seen(b[1]))) {
      this.index.set(name, { size: st.size, lastUsed: seen(st), order: ++this.tick });
      this.total += st.size;
    }
    this.opened = true;
    if (swept > 0) this.opts.logger.info({ swept, dir: this.dir }, 'cache: removed temp files left by an interrupted put');
    this.evict();
  }

  has(sha256: string): boolean {
    return this.index.has(sha256);
  }

  sizeOf(sha256: string): number | undefined {
    return this.index.get(sha256)?.size;
  }

  get totalBytes(): number {
    return this.total;
  }

  /** Marks an entry used now (for LRU). */
  touch(sha256: string): void {
    const e = this.index.get(sha256);
    if (e) this.used(e);
  }

  private used(e: Entry): void {
    e.lastUsed = Date.now();
    e.order = ++this.tick;
  }

  list(): CacheEntryInfo[] {
    return [...this.index.entries()]
      .sort((a, b) => b[1].order - a[1].order)
      .map(([sha256, e]) => {
        let links = 0;
        try {
          links = fs.statSync(this.pathOf(sha256)).nlink - 1;
        } catch {
          /* removed meanwhile */
        }
        return { sha256, size: e.size, lastUsed: new Date(e.lastUsed), links };
      });
  }

  /**
   * Streams `body` into the cache. Checks every digest and size the caller expects; on a mismatch
   * or any error (a full disk included) the temp file is removed and the index is unchanged.
   */
  async put(body: Readable, expected: Expected, what: string): Promise<{ sha256: string; size: number }> {
    this.open();
    const tmp = tempName(this.tmp, 'put');
    /** The file being written, for an error that names it. */
    let at = tmp;
    const sha = createHash('sha256');
    const md5 = expected.md5 ? createHash('md5') : undefined;
    let size = 0;
    let fh: fs.promises.FileHandle | undefined;
    try {
      fh = await fs.promises.open(tmp, 'wx', 0o444);
      for await (const chunk of body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (expected.size !== undefined && size > expected.size) {
          throw new SandletError('EDIGEST', `${what}: the store sent more than the ${expected.size} bytes it announced`);
        }
        if (size > this.maxBytes) {
          throw new SandletError('ECACHE', `${what} is larger than the whole cache (cache_max_bytes ${this.maxBytes}); nothing kept`);
        }
        sha.update(chunk);
        md5?.update(chunk);
        await fh.write(chunk);
      }
      await fh.sync();
      await fh.close();
      fh = undefined;
      const actual = sha.digest('hex');
      if (expected.size !== undefined && size !== expected.size) {
        throw new SandletError('EDIGEST', `${what}: expected ${expected.size} bytes, got ${size}`);
      }
      if (expected.sha256 && actual !== expected.sha256) {
        throw new SandletError('EDIGEST', `${what}: content does not match its digest: expected sha256 ${expected.sha256}, got ${actual}`);
      }
      const actualMd5 = md5?.digest('hex');
      if (expected.md5 && actualMd5 !== expected.md5) {
        throw new SandletError('EDIGEST', `${what}: content does not match its ETag: expected md5 ${expected.md5}, got ${actualMd5}`);
      }
      const target = this.pathOf(actual);
      if (this.index.has(actual) && fs.existsSync(target)) {
        await fs.promises.rm(tmp, { force: true }); // identical content is kept once
        this.touch(actual);
        return { sha256: actual, size };
      }
      at = target;
      await fs.promises.rename(tmp, target);
      await syncDir(this.objects);
      const st = await fs.promises.stat(target);
      this.index.set(actual, { size, lastUsed: Date.now(), order: ++this.tick, verified: identity(st) });
      this.total += size;
      this.evict([actual]);
      return { sha256: actual, size };
    } catch (err) {
      await fh?.close().catch(() => {});
      await fs.promises.rm(tmp, { force: true }).catch(() => {});
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        throw new SandletError('ECACHE', `disk full while caching ${what} in ${this.dir} (${size} bytes written, none kept): ${code}`);
      }
      // The store's stream fails with its own (Sandlet) errors; a file system error is the cache's.
      if (err instanceof SandletError || !isFsError(err)) throw err;
      throw cacheError(err, `cannot cache ${what}: writing ${at} failed`);
    }
  }

  /**
   * The entry's path, once its bytes are known to match its digest: hashed again whenever the file
   * changed since it was last hashed. A corrupted file is removed and EDIGEST thrown; a missing
   * one throws ECACHEMISS.
   */
  async verifiedPath(sha256: string): Promise<string> {
    const v = await this.verify(sha256);
    if ('file' in v) return v.file;
    if (v.actual === undefined) throw new SandletError('ECACHEMISS', `cache entry ${sha256} is missing`);
    throw new SandletError('EDIGEST', `cached file ${sha256} is corrupted: expected sha256 ${sha256}, got ${v.actual}`);
  }

  private async verify(sha256: string, force = false): Promise<{ file: string } | { actual?: string }> {
    const file = this.pathOf(sha256);
    const e = this.index.get(sha256);
    const st = e ? await fs.promises.stat(file).catch(() => undefined) : undefined;
    if (!e || !st) {
      this.drop(sha256);
      return {};
    }
    const id = identity(st);
    if (force || !(e.verified && sameIdentity(e.verified, id))) {
      const actual = await hashFile(file);
      if (actual !== sha256) {
        this.opts.logger.error({ sha256, actual, file }, 'cache: cached file no longer matches its digest; discarded');
        this.opts.metrics.corrupt(sha256);
        await fs.promises.rm(file, { force: true }).catch((err: Error) => {
          // Unwritable: it stays on disk, but out of the index, so it is never used.
          this.opts.logger.warn({ file, err: err.message }, 'cache: cannot remove a corrupted file');
        });
        this.drop(sha256);
        return { actual };
      }
      e.verified = id;
    }
    this.used(e);
    return { file };
  }

  /**
   * Puts a private copy of a verified entry at `dest`, read-only (or with `mode`; owned by `owner`
   * when running as root), hashed again once copied. Never a hard link: a scope's files must not
   * share an inode with the cache, or rewriting a cache file in place would change what a daemon
   * (or a task worker it starts later) loads. A reflink clone costs no space where supported.
   */
  async install(sha256: string, dest: string, opts: { mode?: number; owner?: { uid: number; gid: number } } = {}): Promise<FileIdentity> {
    const src = await this.verifiedPath(sha256);
    await fs.promises.copyFile(src, dest, fs.constants.COPYFILE_FICLONE | fs.constants.COPYFILE_EXCL);
    await fs.promises.chmod(dest, opts.mode ?? 0o444);
    if (opts.owner && process.geteuid?.() === 0) await fs.promises.chown(dest, opts.owner.uid, opts.owner.gid);
    // The copy must hold what was verified: a change between hashing and copying is caught here.
    const copied = await hashFile(dest);
    if (copied !== sha256) throw new SandletError('EDIGEST', `copy of cache entry ${sha256} does not match: got ${copied}`);
    return identity(await fs.promises.stat(dest));
  }

  /** Hashes every entry again; removes those that no longer match. */
  async verifyAll(): Promise<{ ok: number; corrupt: { sha256: string; actual: string }[] }> {
    this.open();
    let ok = 0;
    const corrupt: { sha256: string; actual: string }[] = [];
    for (const sha256 of [...this.index.keys()]) {
      const v = await this.verify(sha256, true);
      if ('file' in v) ok++;
      else corrupt.push({ sha256, actual: v.actual ?? 'missing' });
    }
    return { ok, corrupt };
  }

  /**
   * Removes least recently used entries until the cache fits `maxBytes`, skipping what is in use.
   * Returns what it removed; warns when in-use entries alone exceed the cap.
   */
  evict(keep: string[] = [], maxBytes = this.maxBytes): { sha256: string; size: number }[] {
    if (this.total <= maxBytes) return [];
    const pinned = new Set<string>([...keep, ...(this.opts.inUse?.() ?? [])]);
    const candidates = [...this.index.entries()].filter(([sha]) => !pinned.has(sha)).sort((a, b) => a[1].order - b[1].order);
    const removed: { sha256: string; size: number }[] = [];
    for (const [sha256, e] of candidates) {
      if (this.total <= maxBytes) break;
      fs.rmSync(this.pathOf(sha256), { force: true });
      this.drop(sha256);
      removed.push({ sha256, size: e.size });
      this.opts.metrics.eviction(sha256, e.size);
    }
    if (removed.length > 0) this.opts.logger.info({ evicted: removed.length, bytes: removed.reduce((n, r) => n + r.size, 0), total: this.total }, 'cache: evicted least recently used entries');
    if (this.total > maxBytes) {
      this.opts.logger.warn({ total: this.total, maxBytes }, 'cache: entries in use exceed the cache size cap; nothing more can be evicted now');
    }
    return removed;
  }

  private drop(sha256: string): void {
    const e = this.index.get(sha256);
    if (!e) return;
    this.index.delete(sha256);
    this.total -= e.size;
  }
}


/** An errno error of a file system call (not a stream's own error). */
function isFsError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return typeof e?.code === 'string' && typeof e.syscall === 'string';
}

/** A file system failure in the cache, as ECACHE naming what and where (e.g. EPERM on an immutable dir). */
function cacheError(err: unknown, what: string): SandletError {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new SandletError('ECACHE', `${what}: ${code}`, { cause: err });
}

export async function hashFile(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

// The rename is durable only once the directory entry is on disk.
async function syncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

