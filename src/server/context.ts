import type { Logger } from 'pino';
import type { SandletConfig } from '../config.js';
import type { Gateway } from '../gateway.js';
import type { HttpError } from './http-errors.js';
import type { ServerMetrics } from './metrics.js';

/** What every route needs. */
export interface ServerContext {
  gateway: Gateway;
  config: SandletConfig;
  metrics: ServerMetrics;
  logger: Logger;
  /** Invocations still streaming: draining waits for them. */
  inflight: InflightCounter;
  /** An error as the client sees it (status, one-line JSON, no host paths). */
  toHttp: (err: unknown) => HttpError;
}

/** Counts work in progress and tells a drain when it reaches zero. */
export class InflightCounter {
  private n = 0;
  private waiters: (() => void)[] = [];

  get count(): number {
    return this.n;
  }

  enter(): void {
    this.n++;
  }

  leave(): void {
    this.n--;
    if (this.n === 0) for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves true when nothing is in flight, false when `ms` passed first. */
  idle(ms: number): Promise<boolean> {
    if (this.n === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      this.waiters.push(done);
    });
  }
}
