import { describe, expect, it } from 'vitest';
import { SandletError } from '../../src/errors.js';
import { toHttpError } from '../../src/server/http-errors.js';
import { PeerThrottle } from '../../src/server/peer-throttle.js';

describe('peer throttle', () => {
  it('lets a few failures pass, then doubles the wait up to a cap, per peer', () => {
    const t = new PeerThrottle();
    const waits = Array.from({ length: 10 }, (_, i) => t.failed('10.0.0.1', 1000 + i));
    expect(waits).toEqual([0, 0, 0, 200, 400, 800, 1600, 3200, 5000, 5000]);
    expect(t.pending('10.0.0.1', 2000)).toBe(5000);
    expect(t.pending('10.0.0.2', 2000)).toBe(0);
    t.succeeded('10.0.0.1');
    expect(t.pending('10.0.0.1', 2000)).toBe(0);
  });

  it('forgets a peer after a quiet spell', () => {
    const t = new PeerThrottle();
    for (let i = 0; i < 6; i++) t.failed('p', 0);
    expect(t.pending('p', 10 * 60_000)).toBe(0);
    expect(t.failed('p', 10 * 60_000)).toBe(0);
  });
});

describe('http errors', () => {
  it.each([
    ['EBADNAME', 400],
    ['ENOSTORLET', 404],
    ['ESTORLET', 502],
    ['ESANDBOX', 503],
    ['ETIMEDOUT', 504],
    ['ECACHE', 507],
  ] as const)('%s → %i', (code, status) => {
    expect(toHttpError(new SandletError(code, 'x')).status).toBe(status);
  });

  it('tells a backing-off client when to come back', () => {
    const e = toHttpError(new SandletError('EBACKOFF', 'scope s is backing off after 3 crashes; next try in 4 s'));
    expect(e).toEqual({ status: 503, retryAfter: 4, body: { error: 'scope s is backing off after 3 crashes; next try in 4 s', code: 'EBACKOFF' } });
  });
});
