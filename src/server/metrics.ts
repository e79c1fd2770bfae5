// Prometheus metrics for `sandlet serve`. Invocation metrics are counted as requests finish;
// sandbox and cache figures are read from the gateway when Prometheus scrapes.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Gateway } from '../gateway.js';
import type { ConnectionStats } from './listeners.js';

export type Outcome = 'ok' | 'client_error' | 'not_found' | 'storlet_error' | 'unavailable' | 'timeout' | 'failed_midstream' | 'aborted' | 'error';

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly invocations: Counter<'scope' | 'storlet' | 'outcome'>;
  private readonly duration: Histogram<'outcome'>;
  private readonly bytesIn: Counter<'scope'>;
  private readonly bytesOut: Counter<'scope'>;
  private readonly inFlight: Gauge;

  constructor(gateway: Gateway, connections: ConnectionStats) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'sandlet_process_' });
    this.invocations = new Counter({ name: 'sandlet_invocations_total', help: 'Storlet invocations over HTTP, by outcome', labelNames: ['scope', 'storlet', 'outcome'], registers });
    this.duration = new Histogram({
      name: 'sandlet_invocation_duration_seconds',
      help: 'From request to the last output byte (or the failure)',
      labelNames: ['outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.bytesIn = new Counter({ name: 'sandlet_invocation_bytes_in_total', help: 'Object bytes received for invocations', labelNames: ['scope'], registers });
    this.bytesOut = new Counter({ name: 'sandlet_invocation_bytes_out_total', help: 'Output bytes sent by invocations', labelNames: ['scope'], registers });
    this.inFlight = new Gauge({ name: 'sandlet_invocations_in_flight', help: 'Invocations being served now', registers });

    // Connections, read at scrape time from the listeners' counts.
    new Gauge({
      name: 'sandlet_http_connections_open',
      help: 'HTTP connections open now (Unix socket and TCP)',
      registers,
      collect() {
        this.set(connections.open);
      },
    });
    new Counter({
      name: 'sandlet_http_connections_refused_total',
      help: 'Connections closed on arrival because max_connections were open',
      registers,
      collect() {
        this.reset();
        this.inc(connections.refused);
      },
    });
    new Counter({
      name: 'sandlet_http_connections_timed_out_total',
      help: 'Connections closed for slowness: headers not in within header_timeout_ms, or a body idle for body_idle_timeout_ms',
      labelNames: ['phase'],
      registers,
      collect() {
        this.reset();
        this.inc({ phase: 'headers' }, connections.timedOut.headers);
        this.inc({ phase: 'body' }, connections.timedOut.body);
      },
    });

    // Read at scrape time from the sandboxes: counters kept by the gateway, exported as counters.
    new Counter({
      name: 'sandlet_cold_starts_total',
      help: 'Sandboxes started to serve an invocation (first use, or after a crash)',
      labelNames: ['scope'],
      registers,
      collect() {
        this.reset();
        for (const sb of gateway.scopes()) {
          const n = (sb.restartCounts.get('start') ?? 0) + (sb.restartCounts.get('crash') ?? 0);
          if (n > 0) this.inc({ scope: sb.scope }, n);
        }
      },
    });
    new Counter({
      name: 'sandlet_sandbox_restarts_total',
      help: 'Sandbox starts by reason: start, crash, adopted, operator, image-changed, daemon-stop-failed',
      labelNames: ['scope', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const sb of gateway.scopes()) for (const [reason, n] of sb.restartCounts) this.inc({ scope: sb.scope, reason }, n);
      },
    });
    new Gauge({
      name: 'sandlet_scope_uptime_ratio',
      help: 'Share of time since the scope first started without an unplanned outage',
      labelNames: ['scope'],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const sb of gateway.scopes()) if (sb.restarts.length > 0) this.set({ scope: sb.scope }, sb.availability.uptimeRatio(now));
      },
    });
    new Gauge({
      name: 'sandlet_scope_mean_time_to_recovery_seconds',
      help: 'Mean time from an unplanned sandbox death to running again',
      labelNames: ['scope'],
      registers,
      collect() {
        this.reset();
        for (const sb of gateway.scopes()) {
          const mttr = sb.availability.meanTimeToRecoverySeconds();
          if (mttr !== undefined) this.set({ scope: sb.scope }, mttr);
        }
      },
    });
    const cache = gateway.cacheMetrics;
    const fromCache = (name: string, help: string, read: () => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    };
    fromCache('sandlet_cache_hits_total', 'Storlet and dependency lookups served from the cache', () => cache.hits);
    fromCache('sandlet_cache_misses_total', 'Lookups that fetched content from the store', () => cache.misses);
    fromCache('sandlet_cache_evictions_total', 'Cache entries evicted to stay under cache_max_bytes', () => cache.evictions);
    fromCache('sandlet_cache_evicted_bytes_total', 'Bytes evicted', () => cache.evictedBytes);
    fromCache('sandlet_cache_fetched_bytes_total', 'Bytes fetched from the store', () => cache.fetchedBytes);
    fromCache('sandlet_cache_fetch_seconds_total', 'Time spent fetching from the store', () => cache.fetchSeconds);
    fromCache('sandlet_cache_corruptions_total', 'Cached files found changed on disk (discarded, fetched again)', () => cache.corruptions);
    fromCache('sandlet_cache_stale_served_total', 'Lookups served from the cache because the store was unreachable', () => cache.staleServed);
    new Gauge({
      name: 'sandlet_cache_bytes',
      help: 'Bytes in the cache',
      registers,
      collect() {
        this.set(gateway.cache.totalBytes);
      },
    });
  }

  started(): void {
    this.inFlight.inc();
  }

  finished(scope: string, storlet: string, outcome: Outcome, seconds: number, bytesIn: number, bytesOut: number): void {
    this.inFlight.dec();
    this.invocations.inc({ scope, storlet, outcome });
    this.duration.observe({ outcome }, seconds);
    if (bytesIn > 0) this.bytesIn.inc({ scope }, bytesIn);
    if (bytesOut > 0) this.bytesOut.inc({ scope }, bytesOut);
  }
}
