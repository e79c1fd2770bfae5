import { describe, expect, it } from 'vitest';
import { backoffMs } from '../../src/runtime/sandbox.js';

describe('flapping back-off', () => {
  it('restarts a first early death at once, then backs off 1 s doubling to 60 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 20].map(backoffMs)).toEqual([0, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
  });
});
