// What the front doors count: proxied requests and storlet runs, by API and outcome. Never a
// credential, path or object name as a label (unbounded and private).
import { Counter, Histogram, type Registry } from 'prom-client';

export class ProxyMetrics {
  private readonly requests: Counter<'api' | 'kind' | 'outcome'>;
  private readonly runs: Counter<'api' | 'outcome'>;
  private readonly runSeconds: Histogram<'api'>;

  constructor(registry: Registry) {
    this.requests = new Counter({ name: 'sandlet_proxy_requests_total', help: 'Requests the front door passed to the upstream unchanged, by API and outcome', labelNames: ['api', 'kind', 'outcome'], registers: [registry] });
    this.runs = new Counter({ name: 'sandlet_proxy_storlet_runs_total', help: 'Storlet runs asked for through a front door, by API and outcome', labelNames: ['api', 'outcome'], registers: [registry] });
    this.runSeconds = new Histogram({ name: 'sandlet_proxy_storlet_run_seconds', help: 'Time from a front-door storlet request to its last byte', labelNames: ['api'], buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60], registers: [registry] });
  }

  passthrough(api: string, outcome: string): void {
    this.requests.inc({ api, kind: 'passthrough', outcome });
  }

  storletRun(api: string, outcome: string, seconds: number): void {
    this.runs.inc({ api, outcome });
    this.runSeconds.observe({ api }, seconds);
  }
}
