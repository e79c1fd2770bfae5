// Per-scope availability, as an operator's SLA view wants it: an unexpected death opens an outage
// that closes when the sandbox runs again. Planned stops (idle, eviction, an operator) are not
// outages. Times are ms on the caller's clock.

export class Availability {
  private firstUpAt: number | undefined;
  private downSince: number | undefined;
  private downMs = 0;
  private outages = 0;
  private recoveredMs = 0;

  /** The sandbox runs (again). Closes an open outage. */
  up(now: number): void {
    this.firstUpAt ??= now;
    if (this.downSince !== undefined) {
      const took = now - this.downSince;
      this.downMs += took;
      this.recoveredMs += took;
      this.outages++;
      this.downSince = undefined;
    }
  }

  /** The sandbox died without being asked to. */
  failed(now: number): void {
    if (this.firstUpAt !== undefined) this.downSince ??= now;
  }

  /** Share of the time since the first start without an open or past outage (1 before any start). */
  uptimeRatio(now: number): number {
    if (this.firstUpAt === undefined) return 1;
    const observed = now - this.firstUpAt;
    if (observed <= 0) return 1;
    const down = this.downMs + (this.downSince !== undefined ? now - this.downSince : 0);
    return Math.max(0, 1 - down / observed);
  }

  /** Mean time to recovery of closed outages, in seconds (undefined before the first). */
  meanTimeToRecoverySeconds(): number | undefined {
    return this.outages === 0 ? undefined : this.recoveredMs / this.outages / 1000;
  }

  get recoveries(): number {
    return this.outages;
  }
}
