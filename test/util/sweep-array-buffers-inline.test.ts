import { describe, expect, it } from 'vitest';
import { sweepArrayBuffersInline } from '../../src/util/sweep-array-buffers-inline.js';

describe('sweepArrayBuffersInline', () => {
  it('keeps an operator\'s own choice of the flag, in either spelling', () => {
    for (const arg of ['--concurrent-array-buffer-sweeping', '--no-concurrent_array_buffer_sweeping']) {
      process.execArgv.push(arg);
      try {
        expect(sweepArrayBuffersInline()).toBe(false);
      } finally {
        process.execArgv.pop();
      }
    }
  });

  it('sets the flag on the V8 of Node 20 and 22', () => {
    // Said in Node's terms, not by the module's own V8 pattern.
    const major = Number(process.versions.node.split('.')[0]);
    expect(sweepArrayBuffersInline()).toBe(major === 20 || major === 22);
  });
});
