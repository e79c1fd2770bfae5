// Slows down token guessing without punishing the wrong caller. Failures are counted per token id
// (what is guessed) and, separately, per peer; after a few, a failed answer waits longer (0.2 s
// doubling to a 5 s cap; the wait is applied once per failure). A record is cleared only by its
// own success or a quiet spell: a success with one token never resets another's record. Checks of
// one token id take turns, so guessing one id's secret runs at most one attempt per wait, however
// many connections the guesser opens. A valid token is never held by a peer's record: peer
// failures delay only that peer's failed answers.
import PQueue from 'p-queue';
import { setTimeout as sleep } from 'node:timers/promises';

export const FREE_FAILURES = 3;
export const FIRST_DELAY_MS = 200;
export const MAX_DELAY_MS = 5000;
const FORGET_AFTER_MS = 10 * 60_000;
const MAX_KEYS = 10_000;

/** Failure counts by key, and the wait each next failure earns. */
export class FailureCounts {
  private readonly failures = new Map<string, { count: number; last: number }>();

  /** Records a failure; returns how long to hold its answer. */
  failed(key: string, now = Date.now()): number {
    const rec = this.failures.get(key);
    const count = rec && now - rec.last < FORGET_AFTER_MS ? rec.count + 1 : 1;
    if (this.failures.size >= MAX_KEYS && !rec) this.prune(now);
    this.failures.set(key, { count, last: now });
    return delayFor(count);
  }

  succeeded(key: string): void {
    this.failures.delete(key);
  }

  /** Failures on record for the key (0 once forgotten). */
  count(key: string, now = Date.now()): number {
    const rec = this.failures.get(key);
    return rec && now - rec.last < FORGET_AFTER_MS ? rec.count : 0;
  }

  private prune(now: number): void {
    for (const [key, rec] of this.failures) if (now - rec.last >= FORGET_AFTER_MS) this.failures.delete(key);
    if (this.failures.size >= MAX_KEYS) this.failures.clear();
  }
}

export function delayFor(count: number): number {
  if (count <= FREE_FAILURES) return 0;
  return Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (count - FREE_FAILURES - 1));
}

export class AuthThrottle {
  readonly byToken = new FailureCounts();
  readonly byPeer = new FailureCounts();
  private readonly turns = new Map<string, PQueue>();

  /**
   * Runs `check` in the token id's turn (a token without an id: in its peer's). A failure is
   * recorded against both the id and the peer, and its answer held for the longer of their waits.
   */
  async attempt<T>(tokenId: string | undefined, peer: string, check: () => Promise<T | undefined>): Promise<T | undefined> {
    const key = tokenId !== undefined ? `id:${tokenId}` : `peer:${peer}`;
    let turn = this.turns.get(key);
    if (!turn) this.turns.set(key, (turn = new PQueue({ concurrency: 1 })));
    try {
      return (await turn.add(async () => {
        const found = await check();
        if (found !== undefined) {
          if (tokenId !== undefined) this.byToken.succeeded(tokenId);
          return found;
        }
        const wait = Math.max(tokenId !== undefined ? this.byToken.failed(tokenId) : 0, this.byPeer.failed(peer));
        if (wait > 0) await sleep(wait);
        return undefined;
      })) as T | undefined;
    } finally {
      if (turn.size === 0 && turn.pending === 0) this.turns.delete(key);
    }
  }
}
