// Resolves a storlet name to verified cached content: asks the store at most every `cache_ttl`,
// fetches what changed (once, however many callers wait), and falls back to a verified cached copy
// when the store cannot be reached. What it resolved is remembered on disk (refs/), so a restarted
// gateway can still run cached storlets while the store is down.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import { SandletError, isSandletError, oneLine } from '../errors.js';
import { validateDependencyName, validateStorletName } from '../names.js';
import { atomicWriteFileSync, sweepTemps } from './atomic-file.js';
import type { CacheMetrics } from './cache-metrics.js';
import type { ContentCache } from './content-cache.js';
import type { FileIdentity } from './file-identity.js';
import type { DependencyMeta, StorletMeta } from './registration.js';
import type { DeployInput, ItemKind, StoreAuth, StoreItem, StorletStore } from './storlet-store.js';

export type ResolvedItem = {
  name: string;
  sha256: string;
  size: number;
  /** The store's freshness stamp when this was fetched. */
  stamp: string;
  /** When the store last confirmed it (ms, catalog clock). */
  checkedAt: number;
} & ({ kind: 'storlet'; meta: StorletMeta } | { kind: 'dependency'; meta: DependencyMeta });

export interface ResolvedStorlet {
  storlet: ResolvedItem & { kind: 'storlet'; meta: StorletMeta };
  dependencies: (ResolvedItem & { kind: 'dependency'; meta: DependencyMeta })[];
  /** Changes whenever the daemon must restart: content, main, language or a dependency. */
  version: string;
  /** Every cache digest the storlet's dir holds. */
  contents: string[];
}

export interface StorletCatalogOptions {
  store: StorletStore;
  cache: ContentCache;
  metrics: CacheMetrics;
  logger: Logger;
  ttlMs: number;
  /** Concurrent fetches from the store. */
  fetchConcurrency?: number;
  /**
   * Keeps this catalog's name records apart from other catalogs on the same cache (the Swift front
   * door has one catalog per account: a storlet name means different content in each). A valid scope name.
   */
  namespace?: string;
  /** Cached bytes were found corrupted and fetched again: daemons using `sha256` must reinstall. */
  onRepaired?: (sha256: string) => void;
  now?: () => number;
}

export class StorletCatalog {
  readonly store: StorletStore;
  private readonly cache: ContentCache;
  private readonly opts: StorletCatalogOptions;
  private readonly log: Logger;
  private readonly items = new Map<string, ResolvedItem>();
  private readonly inflight = new Map<string, Promise<ResolvedItem>>();
  private readonly resolved = new Map<string, ResolvedStorlet>();
  private readonly fetches: PQueue;
  private readonly now: () => number;
  private opened = false;

  constructor(opts: StorletCatalogOptions) {
    this.opts = opts;
    this.store = opts.store;
    this.cache = opts.cache;
    this.log = opts.logger.child({ component: 'cache' });
    this.fetches = new PQueue({ concurrency: opts.fetchConcurrency ?? 4 });
    this.now = opts.now ?? Date.now;
  }

  private get refsDir(): string {
    return this.opts.namespace ? path.join(this.cache.dir, 'refs', 'ns', this.opts.namespace) : path.join(this.cache.dir, 'refs');
  }

  private refPath(kind: ItemKind, name: string): string {
    return path.join(this.refsDir, kind, `${kind === 'storlet' ? validateStorletName(name) : validateDependencyName(name)}.json`);
  }

  /** Opens the cache and reloads what was resolved before, as stale (the store is asked first). */
  open(): void {
    if (this.opened) return;
    this.cache.open();
    for (const kind of ['storlet', 'dependency'] as const) {
      const dir = path.join(this.refsDir, kind);
      sweepTemps(dir);
      let names: string[] = [];
      try {
        names = fs.readdirSync(dir).filter((n) => n.endsWith('.json'));
      } catch {
        continue;
      }
      for (const file of names) {
        try {
          const rec = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as ResolvedItem;
          if (rec.kind !== kind || `${rec.name}.json` !== file || !this.cache.has(rec.sha256)) continue;
          this.items.set(key(kind, rec.name), { ...rec, checkedAt: -Infinity });
        } catch {
          fs.rmSync(path.join(dir, file), { force: true }); // unreadable: the store will tell again
        }
      }
    }
    this.opened = true;
  }

  /** Names that currently resolve to `sha256` (for listings). */
  namesOf(sha256: string): string[] {
    return [...this.items.values()].filter((r) => r.sha256 === sha256).map((r) => `${r.kind}:${r.name}`);
  }

  /**
   * The storlet and its dependencies, cached and verified at the last check. `auth`: the caller's
   * credentials for the store, used if this call is the one that asks it (concurrent callers of
   * one name share one question, asked with the first one's).
   */
  async resolve(name: string, auth?: StoreAuth): Promise<ResolvedStorlet> {
    this.open();
    const storlet = (await this.item('storlet', name, auth)) as ResolvedStorlet['storlet'];
    // Most storlets have no dependencies: skip Promise.all on the invocation path then.
    const deps = storlet.meta.dependencies;
    const dependencies = (deps.length === 0 ? [] : await Promise.all(deps.map((d) => this.item('dependency', d, auth)))) as ResolvedStorlet['dependencies'];
    const prev = this.resolved.get(storlet.name);
    // The same records as last time: the same object, so callers can memoise on it.
    if (prev && prev.storlet === storlet && prev.dependencies.length === dependencies.length && prev.dependencies.every((d, i) => d === dependencies[i])) {
      return prev;
    }
    const h = createHash('sha256').update(`${storlet.sha256}\0${storlet.meta.main}\0${storlet.meta.language}\0${storlet.meta.languageVersion ?? ''}`);
    for (const d of dependencies) h.update(`\0${d.name}:${d.sha256}:${d.meta.permissions ?? ''}`);
    const next: ResolvedStorlet = {
      storlet,
      dependencies,
      version: h.digest('hex').slice(0, 16),
      contents: [storlet.sha256, ...dependencies.map((d) => d.sha256)],
    };
    this.resolved.set(storlet.name, next);
    return next;
  }

  /** Deploys to the store and makes the next resolve of that name ask the store again. */
  async deploy(content: Buffer, input: DeployInput): Promise<Awaited<ReturnType<StorletStore['deploy']>>> {
    const reg = await this.store.deploy(content, input);
    this.invalidate(input.kind, reg.name);
    return reg;
  }

  /** The next resolve of this item asks the store, whatever the TTL says. */
  invalidate(kind: ItemKind, name: string): void {
    const rec = this.items.get(key(kind, name));
    if (rec) rec.checkedAt = -Infinity;
  }

  /**
   * Puts the storlet's files into `stage` (a fresh dir): dependencies with their permissions, and
   * each file verified against its digest on the way. A corrupted or evicted entry is fetched again once.
   */
  async install(r: ResolvedStorlet, stage: string, owner?: { uid: number; gid: number }, auth?: StoreAuth): Promise<Map<string, FileIdentity>> {
    // Names relative to the dir: the stage is renamed into place afterwards.
    const files = new Map<string, FileIdentity>();
    for (const item of [r.storlet, ...r.dependencies]) {
      const dest = path.join(stage, item.name);
      // An exec storlet is the program itself: read-only, and executable.
      const mode = item.kind === 'dependency' ? item.meta.permissions : item.meta.language === 'exec' ? 0o555 : undefined;
      try {
        files.set(item.name, await this.cache.install(item.sha256, dest, { mode, owner }));
      } catch (err) {
        if (!isSandletError(err, 'EDIGEST') && !isSandletError(err, 'ECACHEMISS')) throw err;
        this.log.warn({ kind: item.kind, name: item.name, err: oneLine(err) }, 'cached content unusable; fetching it again');
        await fs.promises.rm(dest, { force: true });
        await this.fetch(item.kind, item.name, auth, { sha256: item.sha256, size: item.size });
        files.set(item.name, await this.cache.install(item.sha256, dest, { mode, owner }));
      }
    }
    return files;
  }

  private item(kind: ItemKind, name: string, auth: StoreAuth | undefined): ResolvedItem | Promise<ResolvedItem> {
    const k = key(kind, name);
    const rec = this.items.get(k);
    if (rec && this.now() - rec.checkedAt < this.opts.ttlMs && this.cache.has(rec.sha256)) {
      this.cache.touch(rec.sha256);
      this.opts.metrics.hit(kind, name);
      return rec;
    }
    let p = this.inflight.get(k);
    if (!p) {
      p = this.refresh(kind, name, rec, auth).finally(() => this.inflight.delete(k));
      this.inflight.set(k, p);
    }
    return p;
  }

  private async refresh(kind: ItemKind, name: string, rec: ResolvedItem | undefined, auth: StoreAuth | undefined): Promise<ResolvedItem> {
    let item: StoreItem;
    try {
      item = await this.store.stat(kind, name, auth);
    } catch (err) {
      if (isSandletError(err, 'ENOSTORLET')) {
        this.forget(kind, name);
        throw err;
      }
      if (!isSandletError(err, 'ESTORE')) throw err;
      if (rec && this.cache.has(rec.sha256)) {
        this.log.warn({ kind, name, err: err.message }, 'storlet store unavailable; using the verified cached copy');
        this.opts.metrics.stale(kind, name);
        rec.checkedAt = this.now(); // ask again after another TTL, not on every call
        return rec;
      }
      throw new SandletError('ESTORE', `${err.message}, and ${kind} ${name} is not cached`);
    }
    const now = this.now();
    if (rec && rec.stamp === item.stamp && sameMeta(rec.meta, item.meta) && this.cache.has(rec.sha256)) {
      if (await this.intact(rec)) {
        rec.checkedAt = now;
        this.cache.touch(rec.sha256);
        this.opts.metrics.hit(kind, name);
        return rec;
      }
    }
    let content: { sha256: string; size: number; item: StoreItem };
    if (item.expected.sha256 && this.cache.has(item.expected.sha256)) {
      content = { sha256: item.expected.sha256, size: this.cache.sizeOf(item.expected.sha256) ?? 0, item };
      this.opts.metrics.hit(kind, name);
    } else {
      this.opts.metrics.miss(kind, name);
      try {
        content = await this.fetch(kind, name, auth);
      } catch (err) {
        // The cache cannot take the new content (e.g. unwritable): the verified copy it holds serves on.
        if (!isSandletError(err, 'ECACHE') || !rec || !this.cache.has(rec.sha256) || !(await this.intact(rec))) throw err;
        this.log.warn({ kind, name, err: err.message }, 'cannot cache the store\'s version; using the verified cached copy');
        this.opts.metrics.stale(kind, name);
        rec.checkedAt = now; // ask again after another TTL, not on every call
        return rec;
      }
    }
    const next = { kind: content.item.kind, meta: content.item.meta, name, sha256: content.sha256, size: content.size, stamp: content.item.stamp, checkedAt: now } as ResolvedItem;
    this.items.set(key(kind, name), next);
    this.persist(next);
    return next;
  }

  /** Checks a record's cached bytes (cheap unless the file changed); repairs and reports corruption. */
  private async intact(rec: ResolvedItem): Promise<boolean> {
    try {
      await this.cache.verifiedPath(rec.sha256);
      return true;
    } catch (err) {
      if (!isSandletError(err, 'EDIGEST') && !isSandletError(err, 'ECACHEMISS')) throw err;
      if (isSandletError(err, 'EDIGEST')) this.opts.onRepaired?.(rec.sha256);
      return false;
    }
  }

  /**
   * Fetches an item into the cache through the fetch queue. A digest mismatch discards the bytes and
   * fetches once more; a second mismatch fails with both digests.
   */
  private fetch(kind: ItemKind, name: string, auth: StoreAuth | undefined, mustMatch?: { sha256: string; size: number }): Promise<{ sha256: string; size: number; item: StoreItem }> {
    // With the credentials of the caller who asked, not of whichever call drained the queue.
    return this.fetches.add(async () => {
      for (let attempt = 1; ; attempt++) {
        const started = performance.now();
        const { item, body } = await this.store.open(kind, name, auth);
        const expected = mustMatch ? { ...item.expected, ...mustMatch } : item.expected;
        try {
          const put = await this.cache.put(body, expected, `${kind} ${name} from the ${this.store.description}`);
          this.opts.metrics.fetched(kind, name, put.size, (performance.now() - started) / 1000);
          this.log.info({ kind, name, sha256: put.sha256, bytes: put.size }, 'fetched into the cache');
          return { ...put, item };
        } catch (err) {
          body.destroy();
          if (!isSandletError(err, 'EDIGEST')) throw err;
          if (attempt >= 2) throw new SandletError('EDIGEST', `${err.message} (fetched twice; not run)`);
          this.log.warn({ kind, name, err: err.message }, 'fetched content did not verify; discarded, fetching again');
        }
      }
    }) as Promise<{ sha256: string; size: number; item: StoreItem }>;
  }

  private persist(rec: ResolvedItem): void {
    const { checkedAt: _c, ...stored } = rec;
    try {
      atomicWriteFileSync(this.refPath(rec.kind, rec.name), `${JSON.stringify(stored)}\n`);
    } catch (err) {
      // Only the offline fallback after a restart needs it: worth a warning, not a failed call.
      this.log.warn({ kind: rec.kind, name: rec.name, err: oneLine(err) }, 'could not record a cache reference');
    }
  }

  private forget(kind: ItemKind, name: string): void {
    this.items.delete(key(kind, name));
    if (kind === 'storlet') this.resolved.delete(name);
    fs.rmSync(this.refPath(kind, name), { force: true });
  }
}

function key(kind: ItemKind, name: string): string {
  return `${kind}/${name}`;
}

function sameMeta(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
