import type { Command } from 'commander';
import pino from 'pino';
import { CacheMetrics } from '../cache/cache-metrics.js';
import { StorletCatalog } from '../cache/catalog.js';
import { ContentCache } from '../cache/content-cache.js';
import { openStore } from '../cache/open-store.js';
import { parseSize, type SandletConfig } from '../config.js';
import { ONE_SHOT_DEFAULTS, addCommonOptions, configFromFlags, type CommonFlags } from './common.js';
import { formatBytes, table } from './format.js';

// The cache is read and changed from outside the gateway's process. Scope dirs hold private copies
// of what their daemons run, so pruning never pulls a file from under a daemon (it is fetched
// again at its next start); a file something else hard-linked still counts as in use.
function openCache(config: SandletConfig): { cache: ContentCache; catalog: StorletCatalog } {
  const logger = pino({ level: config.log_level }, pino.destination(2));
  const metrics = new CacheMetrics();
  const cache: ContentCache = new ContentCache({
    dir: config.cache_dir,
    maxBytes: parseSize(config.cache_max_bytes),
    logger,
    metrics,
    inUse: () => cache.list().filter((e) => e.links > 0).map((e) => e.sha256),
  });
  const catalog = new StorletCatalog({ store: openStore(config), cache, metrics, logger, ttlMs: config.cache_ttl * 1000 });
  catalog.open();
  return { cache, catalog };
}

export function registerCache(program: Command): void {
  const cmd = program.command('cache').description('inspect, verify and prune the node\'s storlet cache (config cache_dir)');

  addCommonOptions(cmd.command('ls').description('list cached content, most recently used first').option('--json', 'print JSON')).action(
    (flags: CommonFlags & { json?: boolean }) => {
      const config = configFromFlags(flags, ONE_SHOT_DEFAULTS);
      const { cache, catalog } = openCache(config);
      const entries = cache.list().map((e) => ({ ...e, names: catalog.namesOf(e.sha256) }));
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ dir: cache.dir, totalBytes: cache.totalBytes, maxBytes: cache.maxBytes, entries }, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        table(
          ['SHA256', 'SIZE', 'LAST USED', 'LINKS', 'NAMES'],
          entries.map((e) => [e.sha256.slice(0, 16), formatBytes(e.size), e.lastUsed.toISOString(), String(e.links), e.names.join(', ') || '-']),
        ),
      );
      process.stdout.write(`${entries.length} entries, ${formatBytes(cache.totalBytes)} of ${formatBytes(cache.maxBytes)} in ${cache.dir}\n`);
    },
  );

  addCommonOptions(cmd.command('verify').description('hash every cached file again; remove and report those that changed').option('--json', 'print JSON')).action(
    async (flags: CommonFlags & { json?: boolean }) => {
      const { cache } = openCache(configFromFlags(flags, ONE_SHOT_DEFAULTS));
      const result = await cache.verifyAll();
      if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else {
        for (const c of result.corrupt) process.stdout.write(`corrupt  ${c.sha256}  (now sha256 ${c.actual}; removed)\n`);
        process.stdout.write(`${result.ok} verified, ${result.corrupt.length} corrupt\n`);
      }
      // Scripts can tell a clean cache from a repaired one.
      if (result.corrupt.length > 0) process.exitCode = 1;
    },
  );

  addCommonOptions(
    cmd
      .command('prune')
      .description('evict least recently used entries (not hard-linked elsewhere), down to the cap')
      .option('--max-bytes <size>', 'target size (default: config cache_max_bytes)')
      .option('--all', 'evict every entry not hard-linked elsewhere'),
  ).action((flags: CommonFlags & { maxBytes?: string; all?: boolean }) => {
    const config = configFromFlags(flags, ONE_SHOT_DEFAULTS);
    const { cache } = openCache(config);
    const target = flags.all ? 0 : parseSize(flags.maxBytes ?? config.cache_max_bytes);
    const before = cache.totalBytes;
    const removed = cache.evict([], target);
    process.stdout.write(`evicted ${removed.length} entries (${formatBytes(before - cache.totalBytes)}); ${formatBytes(cache.totalBytes)} left in ${cache.dir}\n`);
  });
}
