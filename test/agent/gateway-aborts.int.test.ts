// Issue 11 item 1 end to end: a gateway on the process backend, a real agent behind it. Callers
// whose uploads break and readers who leave must not wedge the storlet's daemon, and the agent's
// fds and threads come back to where they were. (Agent-side detail: task-aborts.int.test.ts.)
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { eventually, processUsage, settled } from '../helpers/agent.js';
import { testGateway } from '../helpers/gateway.js';
import { collect } from '../helpers/streams.js';

const POOL = 4;
let gw: Gateway;
let close: () => Promise<void>;
beforeAll(() => {
  ({ gateway: gw, close } = testGateway({ storlet_timeout_ms: 3000, storlet_daemon_thread_pool_size: POOL }));
});
afterAll(async () => {
  await close();
});

/** An input that pushes 512 KiB, then fails 20 ms later, as a caller whose upload breaks. */
function breakingInput(): Readable {
  const input = new Readable({ read() {} });
  input.push(Buffer.alloc(512 * 1024, 0x62));
  setTimeout(() => input.destroy(new Error('caller went away')), 20);
  return input;
}

/** Resolves to the error the caller saw (at invoke or while reading), or undefined if none. */
async function outcome(call: () => Promise<{ body: Readable }>): Promise<Error | undefined> {
  try {
    await collect((await call()).body);
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

const ok = async (scope: string, text: string): Promise<void> => {
  const r = await gw.invoke({ scope, storlet: 'misbehave.mjs', input: Buffer.from(text) });
  expect((await collect(r.body)).toString()).toBe(text);
};

/** POOL invocations running at once (each holds its input open until all have started). */
async function fillPool(scope: string): Promise<void> {
  const inputs = Array.from({ length: POOL }, () => new Readable({ read() {} }));
  const running = await Promise.all(inputs.map((input) => gw.invoke({ scope, storlet: 'misbehave.mjs', input })));
  for (const input of inputs) input.push(null);
  expect(await Promise.all(running.map((r) => collect(r.body).then(String)))).toEqual(running.map(() => ''));
}

describe('a daemon behind the gateway under broken uploads and departed readers', () => {
  it('8 uploads that break after 512 KiB, then normal calls succeed; agent fds and threads flat', async () => {
    await ok('aborts', 'warm');
    await fillPool('aborts');
    const pid = Number(gw.sandbox('aborts').describe().id);
    const before = await settled(() => processUsage(pid));

    for (let i = 0; i < 8; i++) {
      const err = await outcome(() => gw.invoke({ scope: 'aborts', storlet: 'misbehave.mjs', input: breakingInput() }));
      expect(err).toBeInstanceOf(Error);
    }
    // Readers that leave before the storlet writes, and after it began.
    for (let i = 0; i < 8; i++) {
      const r = await gw.invoke({ scope: 'aborts', storlet: 'misbehave.mjs', input: Readable.from([Buffer.alloc(1 << 20, 0x63)]) });
      if (i % 2 === 0) r.body.destroy();
      else r.body.once('data', () => r.body.destroy());
      await new Promise((resolve) => r.body.once('close', resolve));
    }
    for (let i = 0; i < 2 * POOL; i++) await ok('aborts', `after ${i}`);
    await fillPool('aborts');
    await eventually(() => expect(processUsage(pid)).toEqual(before));
  }, 120_000);
});
