// Slows down peers that keep failing authentication: after a few failures, each answer to that
// peer waits longer (doubling, capped). A success or a quiet spell clears the record.

const FREE_FAILURES = 3;
const FIRST_DELAY_MS = 200;
const MAX_DELAY_MS = 5000;
const FORGET_AFTER_MS = 10 * 60_000;
const MAX_PEERS = 10_000;

export class PeerThrottle {
  private readonly failures = new Map<string, { count: number; last: number }>();

  /** How long to hold the answer to this peer's failed attempt. */
  failed(peer: string, now = Date.now()): number {
    const rec = this.failures.get(peer);
    const count = rec && now - rec.last < FORGET_AFTER_MS ? rec.count + 1 : 1;
    if (this.failures.size >= MAX_PEERS && !rec) this.prune(now);
    this.failures.set(peer, { count, last: now });
    return this.delayFor(count);
  }

  /** Delay before even checking this peer's next attempt. */
  pending(peer: string, now = Date.now()): number {
    const rec = this.failures.get(peer);
    if (!rec || now - rec.last >= FORGET_AFTER_MS) return 0;
    return this.delayFor(rec.count);
  }

  succeeded(peer: string): void {
    this.failures.delete(peer);
  }

  private delayFor(count: number): number {
    if (count <= FREE_FAILURES) return 0;
    return Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (count - FREE_FAILURES - 1));
  }

  private prune(now: number): void {
    for (const [peer, rec] of this.failures) if (now - rec.last >= FORGET_AFTER_MS) this.failures.delete(peer);
    if (this.failures.size >= MAX_PEERS) this.failures.clear();
  }
}
