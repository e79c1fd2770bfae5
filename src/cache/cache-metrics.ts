// Counters the cache and catalog keep, and the hooks a metrics exporter (the server) attaches to.
import type { ItemKind } from './storlet-store.js';

export interface CacheObserver {
  /** Resolved from the cache without fetching content. */
  hit?(kind: ItemKind, name: string): void;
  /** Content had to be fetched from the store. */
  miss?(kind: ItemKind, name: string): void;
  fetched?(kind: ItemKind, name: string, bytes: number, seconds: number): void;
  eviction?(sha256: string, bytes: number): void;
  /** Cached bytes no longer matched their digest (discarded, fetched again). */
  corrupt?(sha256: string): void;
  /** The store could not be reached; a verified cached copy was used. */
  staleServed?(kind: ItemKind, name: string): void;
}

export class CacheMetrics {
  hits = 0;
  misses = 0;
  fetches = 0;
  fetchedBytes = 0;
  fetchSeconds = 0;
  evictions = 0;
  evictedBytes = 0;
  corruptions = 0;
  staleServed = 0;
  private readonly observers: CacheObserver[] = [];

  /** Adds hooks; returns a function that removes them. */
  observe(observer: CacheObserver): () => void {
    this.observers.push(observer);
    return () => {
      const at = this.observers.indexOf(observer);
      if (at >= 0) this.observers.splice(at, 1);
    };
  }

  hit(kind: ItemKind, name: string): void {
    this.hits++;
    for (const o of this.observers) o.hit?.(kind, name);
  }

  miss(kind: ItemKind, name: string): void {
    this.misses++;
    for (const o of this.observers) o.miss?.(kind, name);
  }

  fetched(kind: ItemKind, name: string, bytes: number, seconds: number): void {
    this.fetches++;
    this.fetchedBytes += bytes;
    this.fetchSeconds += seconds;
    for (const o of this.observers) o.fetched?.(kind, name, bytes, seconds);
  }

  eviction(sha256: string, bytes: number): void {
    this.evictions++;
    this.evictedBytes += bytes;
    for (const o of this.observers) o.eviction?.(sha256, bytes);
  }

  corrupt(sha256: string): void {
    this.corruptions++;
    for (const o of this.observers) o.corrupt?.(sha256);
  }

  stale(kind: ItemKind, name: string): void {
    this.staleServed++;
    for (const o of this.observers) o.staleServed?.(kind, name);
  }
}
