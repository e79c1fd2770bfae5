// The gateway keeps the heap its output streams free (util/keep-freed-heap.ts): streaming through
// the library API must not fault fresh pages in for every burst of Buffers the GC frees. Counted
// in page faults, not time. Measured in this test: 17 to 23 faults per MiB with it; without it
// (GLIBC_TUNABLES set, which turns it off), 109 in one run of two: glibc trims or not depending
// on where the heap's last live chunk lies.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/sbus/native.js';
import { testGateway } from '../helpers/gateway.js';

const MIB = 1024 * 1024;

function zeros(total: number): Readable {
  const chunk = Buffer.alloc(MIB);
  let sent = 0;
  return new Readable({
    highWaterMark: MIB,
    read() {
      if (sent >= total) return this.push(null);
      sent += chunk.length;
      this.push(chunk);
    },
  });
}

describe('keeping freed heap', () => {
  let t: ReturnType<typeof testGateway>;
  beforeAll(() => {
    t = testGateway();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('refuses bad arguments', () => {
    expect(() => native.keepFreedHeap(-1, 0)).toThrow(/bad arguments/);
    expect(() => native.keepFreedHeap(2 ** 40, 0)).toThrow(/bad arguments/);
  });

  it('streams 512 MiB through the gateway with few page faults', async () => {
    // A gateway in service: the heap churn of many small calls first.
    for (let i = 0; i < 1000; i++) {
      const r = await t.gateway.invoke({ scope: 'heap', storlet: 'identity.mjs', input: Buffer.alloc(1024) });
      for await (const _ of r.body);
    }
    const total = 512 * MIB;
    const before = process.resourceUsage().minorPageFault;
    const r = await t.gateway.invoke({ scope: 'heap', storlet: 'identity.mjs', input: zeros(total) });
    let n = 0;
    for await (const c of r.body) n += (c as Buffer).length;
    const faults = process.resourceUsage().minorPageFault - before;
    expect(n).toBe(total);
    expect(faults / (total / MIB)).toBeLessThan(40);
  });
});
