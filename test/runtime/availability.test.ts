import { describe, expect, it } from 'vitest';
import { Availability } from '../../src/runtime/availability.js';

describe('availability', () => {
  it('counts unexpected deaths as outages until the sandbox runs again', () => {
    const a = new Availability();
    expect(a.uptimeRatio(0)).toBe(1);
    a.failed(0); // before any start: nothing to lose
    a.up(1000);
    a.failed(5000);
    expect(a.uptimeRatio(7000)).toBeCloseTo(4 / 6);
    a.up(7000);
    expect(a.meanTimeToRecoverySeconds()).toBe(2);
    a.failed(9000);
    a.failed(9500); // the same outage
    a.up(13000);
    expect(a.recoveries).toBe(2);
    expect(a.meanTimeToRecoverySeconds()).toBe(3);
    expect(a.uptimeRatio(21000)).toBeCloseTo(1 - 6 / 20);
  });
});
